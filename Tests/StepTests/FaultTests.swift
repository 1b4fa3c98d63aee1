import CContainerSupport
import Foundation
import Testing

extension Steps {
    /// Reliability under faults: a signal to a foreground runtime, a runtime killed with SIGKILL in
    /// the middle of a start (MYDOCKER_TEST_PAUSE_AT stops it at one trace mark, the test kills it
    /// there), a container that ignores SIGTERM, a recorded PID that now belongs to somebody else.
    /// Whatever happens, `rm -f` (steps 08+) or the next run (steps 03-07) leaves nothing behind:
    /// the sandbox's residue check (mounts, cgroups, processes) runs after every test.
    @Suite("Reliability: faults", .timeLimit(.minutes(10)))
    struct ReliabilityFaultTests {
        @Test(
            "SIGINT and SIGTERM to a foreground runtime reach the container's trap, and everything is cleaned up",
            arguments: [
                // the one-workspace step: overlay/default, a cgroup named by a random ID
                ("step05", SIGINT),
                ("step05", SIGTERM),
                // named containers: a record, overlay/NAME and mydocker/NAME
                ("step10", SIGINT),
                ("step10", SIGTERM),
            ])
        func signalsAreForwarded(step: String, signal: Int32) throws {
            try withSandbox(step, image: true, runtimeRemove: step == "step10" ? ["rm", "-f"] : nil) { box in
                let code = Harness.random(in: 1...100)
                let script =
                    "trap 'echo got-$1; exit \(code)' \(signal == SIGINT ? "INT" : "TERM"); echo ready; "
                    + "while :; do sleep 0.05; done"
                let command = ["sh", "-c", script, "sh", signal == SIGINT ? "INT" : "TERM"]
                let arguments =
                    step == "step10"
                    ? ["run", "--name", box.newName(), "busybox"] + command : ["run"] + command
                let running = box.start(arguments)
                #expect(waitUntil { running.stdoutSoFar.contains("ready") }, "the container never started")
                kill(running.pid, signal)
                let r = running.finish()
                let expected = "ready\ngot-\(signal == SIGINT ? "INT" : "TERM")\n"
                #expect(r.exitCode == Int32(code) && r.stdout == expected, "Expected exit \(code)\n\(r)")
                #expect(
                    Self.stateEntries(box.root).isEmpty,
                    "left under \(box.root): \(Self.stateEntries(box.root))")
            }
        }

        @Test(
            "step10 killed with SIGKILL at a mark of its start leaves a state that rm -f cleans completely",
            arguments: [
                // the layer is mounted, no cgroup yet
                ("overlay", true),
                // the cgroup exists, no process yet
                ("cgroup", true),
                // init is cloned, blocked on the command pipe, not yet in the cgroup
                ("clone", true),
                // init is in the cgroup, the command not yet sent
                ("cgroup join", true),
                // the record is written, the container runs: killed by the test
                ("record", true),
                // the record is written, the container runs: left for rm -f to kill
                ("record", false),
                // the container has exited and was waited for, the cleanup has not started
                ("exited", true),
            ])
        func killedMidStartStep10(stage: String, killContainer: Bool) throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let command = stage == "exited" ? ["true"] : ["sleep", "300"]
                let runtime = box.start(
                    ["run", "--name", name, "busybox"] + command,
                    environment: ["MYDOCKER_TEST_PAUSE_AT": stage])
                let paused = waitUntil { processState(runtime.pid) == "T" }
                let left = childPIDs(of: runtime.pid)
                kill(runtime.pid, SIGKILL)
                let killed = runtime.finish()
                try #require(paused, "the runtime never stopped itself at \(stage)\n\(killed)")
                #expect(killed.exitCode == 137, "\(killed)")
                if killContainer {
                    for pid in left { kill(pid, SIGKILL) }
                }
                // Something was left behind: this test is about cleaning it up.
                #expect(
                    FileManager.default.fileExists(atPath: box.root + "/containers/\(name)")
                        && FileManager.default.fileExists(atPath: box.root + "/overlay/\(name)/merged"),
                    "nothing left to clean at \(stage): \(Self.stateEntries(box.root))")
                #expect(
                    isMountPoint(box.root + "/overlay/\(name)/merged"), "the layer is not mounted at \(stage)"
                )

                let rm = box.run(["rm", "-f", name])
                #expect(rm.exitCode == 0 && rm.stdout == name + "\n", "\(rm)")
                #expect(
                    Self.stateEntries(box.root).isEmpty,
                    "left under \(box.root) after rm -f: \(Self.stateEntries(box.root))")
                #expect(
                    !isMountPoint(box.root + "/overlay/\(name)/merged"),
                    "the layer is still mounted after rm -f")
                let cgroups = MachineState.readContainerCgroups().filter { $0.hasSuffix("/mydocker/\(name)") }
                #expect(cgroups.isEmpty, "cgroups left after rm -f: \(cgroups.sorted())")
                for pid in left where killContainer == false {
                    #expect(
                        processState(pid) == nil || processState(pid) == "Z",
                        "container process \(pid) still runs after rm -f")
                }
            }
        }

        @Test(
            "a runtime of steps 03-07 killed with SIGKILL mid-start leaves nothing the next run does not clean",
            arguments: [
                // step05: the workspace is mounted, no cgroup yet
                ("step05", "overlay"),
                // step05: the cgroup (a random ID) exists
                ("step05", "cgroup"),
                // step05: init is cloned
                ("step05", "clone"),
                // step03: the cgroup exists
                ("step03", "cgroup"),
                // step04: init is cloned
                ("step04", "clone"),
                // step06: init is in the cgroup
                ("step06", "cgroup join"),
                // step07: the cgroup exists
                ("step07", "cgroup"),
            ])
        func killedMidStartOneWorkspace(step: String, stage: String) throws {
            try withSandbox(step, image: true) { box in
                let image = step == "step07" ? ["busybox"] : []
                let cgroupsBefore = MachineState.readContainerCgroups()
                let runtime = box.start(
                    ["run"] + image + ["sleep", "300"], environment: ["MYDOCKER_TEST_PAUSE_AT": stage])
                let paused = waitUntil { processState(runtime.pid) == "T" }
                // What the runtime made before it stopped: the cgroups that are new now.
                let made = MachineState.readContainerCgroups().subtracting(cgroupsBefore)
                let left = childPIDs(of: runtime.pid)
                kill(runtime.pid, SIGKILL)
                let killed = runtime.finish()
                try #require(paused, "the runtime never stopped itself at \(stage)\n\(killed)")
                for pid in left { kill(pid, SIGKILL) }
                if stage != "overlay" {
                    #expect(!made.isEmpty, "no cgroup was made before \(stage): nothing to prove")
                }
                let stale = box.root + "/overlay/default/merged"
                if step >= "step05" {
                    #expect(
                        isMountPoint(stale), "no stale workspace at \(stage): \(Self.stateEntries(box.root))")
                }

                let word = "next-\(Harness.random(in: 1000...9999))"
                let next = box.run(["run"] + image + ["echo", word])
                #expect(next.exitCode == 0 && next.stdout == word + "\n", "the next run failed\n\(next)")
                #expect(!isMountPoint(stale), "the stale workspace is still mounted after the next run")
                #expect(
                    Self.stateEntries(box.root).isEmpty,
                    "left under \(box.root) after the next run: \(Self.stateEntries(box.root))")
                let leaked = made.intersection(MachineState.readContainerCgroups())
                // The next run removed the killed run's cgroup: steps 03-07 name it run-PID and
                // clear those whose runtime is gone.
                #expect(
                    leaked.isEmpty, "cgroups leaked by the killed \(step) at \(stage): \(leaked.sorted())"
                )
            }
        }

        @Test("a container whose PID 1 ignores SIGTERM is stopped with SIGKILL once stop -t 1 runs out")
        func stopKillsWhatIgnoresTerm() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let script = "trap '' TERM; echo ready; while :; do sleep 1; done"
                let started = box.run(["run", "-d", "--name", name, "busybox", "sh", "-c", script])
                #expect(started.exitCode == 0, "\(started)")
                #expect(
                    waitUntil { box.run(["logs", name]).stdout == "ready\n" },
                    "the container never got to its trap")
                let pid = Self.recordedPID(box, name)
                let began = Date()
                let r = box.run(["stop", "-t", "1", name])
                let elapsed = Date().timeIntervalSince(began)
                #expect(r.exitCode == 0 && r.stdout == name + "\n", "\(r)")
                // At least the second it was given (SIGTERM did nothing); that SIGKILL then ended
                // it is the check below (a lower bound holds on any machine, an upper one does not).
                #expect(elapsed >= 0.9, "stop -t 1 took \(elapsed) s: it did not wait for the timeout\n\(r)")
                #expect(
                    pid > 0 && (processState(pid) == nil || processState(pid) == "Z"),
                    "PID \(pid) of \(name) is still alive: \(String(describing: processState(pid)))")
                #expect(Self.status(box, name) == "exited", "ps -a:\n\(box.run(["ps", "-a"]).stdout)")
            }
        }

        @Test(
            "a run killed while it unpacks the image leaves no partial copy once the next run has unpacked it",
            arguments: ["step05", "step10"])
        func killedDuringUnpack(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: step == "step10" ? ["rm", "-f"] : nil) { box in
                // A stand-in for tar, first in PATH: it leaves a half-filled directory and hangs,
                // so the runtime can be killed in the middle of its unpack.
                let fakeBin = box.scratch + "/bin"
                try FileManager.default.createDirectory(atPath: fakeBin, withIntermediateDirectories: true)
                let fakeTar = """
                    #!/bin/sh
                    while [ $# -gt 0 ]; do if [ "$1" = -C ]; then dir=$2; fi; shift; done
                    touch "$dir/half-unpacked"
                    exec sleep 30
                    """
                try fakeTar.write(toFile: fakeBin + "/tar", atomically: true, encoding: .utf8)
                chmod(fakeBin + "/tar", 0o755)
                let path = fakeBin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
                let command = step == "step10" ? ["busybox", "true"] : ["true"]
                let runtime = box.start(["run"] + command, environment: ["PATH": path])
                let images = box.root + "/images"
                let partials = {
                    ((try? FileManager.default.contentsOfDirectory(atPath: images)) ?? []).filter {
                        $0.hasPrefix(".") && !$0.hasSuffix(".lock")
                    }
                }
                let halfway = waitUntil {
                    partials().contains {
                        FileManager.default.fileExists(atPath: images + "/" + $0 + "/half-unpacked")
                    }
                }
                let tar = childPIDs(of: runtime.pid)
                kill(runtime.pid, SIGKILL)
                for pid in tar { kill(pid, SIGKILL) }
                let killed = runtime.finish()
                try #require(halfway, "the stand-in tar never ran\n\(killed)")

                let next = box.run(["run"] + command)
                #expect(next.exitCode == 0, "the next run failed\n\(next)")
                #expect(
                    partials().isEmpty,
                    "images/ still holds the killed run's partial unpack: \(partials()) (a whole image's worth of disk, forever)"
                )
            }
        }

        @Test(
            "stop and rm -f of a foreground container succeed while its runtime cleans up at the same time",
            arguments: ["step08", "step09", "step10"], [["stop", "-t", "0"], ["rm", "-f"]])
        func stopForegroundContainer(step: String, command: [String]) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                // Three rounds: the runtime's cleanup and the command race each other.
                for round in 1...3 {
                    let name = box.newName()
                    let runtime = box.start(["run", "--name", name, "busybox", "sleep", "300"])
                    let running = waitUntil { Self.status(box, name) == "running" }
                    let r = box.run(command + [name])
                    let finished = runtime.finish()
                    #expect(running, "round \(round): \(name) never ran\n\(finished)")
                    #expect(
                        r.exitCode == 0 && r.stdout == name + "\n" && r.stderr.isEmpty, "round \(round)\n\(r)"
                    )
                    #expect(finished.exitCode == 137, "round \(round): the runtime\n\(finished)")
                    #expect(
                        Self.stateEntries(box.root).isEmpty,
                        "round \(round): left \(Self.stateEntries(box.root))\n\(r)\n\(finished)")
                }
            }
        }

        @Test("a recorded PID now held by an unrelated process is never reported running, stopped or killed")
        func reusedPIDIsNotTheContainer() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let started = box.run(["run", "-d", "--name", name, "busybox", "true"])
                #expect(started.exitCode == 0, "\(started)")
                #expect(waitUntil { Self.status(box, name) == "exited" }, "\(name) never exited")
                // As if the kernel had handed the container's PID to a new process.
                let unrelated = Spawned(["/bin/sleep", "30"])
                defer {
                    kill(unrelated.pid, SIGKILL)
                    _ = unrelated.finish()
                }
                let path = box.root + "/containers/\(name)/config.json"
                var record = try #require(
                    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
                        as? [String: Any], "no record at \(path)")
                record["pid"] = Int(unrelated.pid)
                try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: path))

                let ps = box.run(["ps", "-a"])
                let row = ps.stdout.split(separator: "\n").map { $0.split(separator: " ") }.first {
                    $0.count > 2 && $0[1] == Substring(name)
                }
                #expect(
                    row.map { Array($0.suffix(2)) } == ["exited", "-"],
                    "Expected \(name) exited, without a PID\n\(ps)")
                #expect(!box.run(["ps"]).stdout.contains(name), "ps lists \(name) as running")
                let exec = box.run(["exec", name, "true"])
                #expect(
                    exec.exitCode == 125
                        && exec.stderrLines == ["step10: container '\(name)' is not running"],
                    "\(exec)")
                let stop = box.run(["stop", "-t", "0", name])
                #expect(stop.exitCode == 0, "\(stop)")
                #expect(processState(unrelated.pid) == "S", "stop killed the unrelated PID \(unrelated.pid)")
                // rm without -f: not running, so no refusal, and nothing is killed.
                let rm = box.run(["rm", name])
                #expect(rm.exitCode == 0 && rm.stdout == name + "\n", "\(rm)")
                #expect(processState(unrelated.pid) == "S", "rm killed the unrelated PID \(unrelated.pid)")
            }
        }

        @Test(
            "a cgroup named like a container, made by somebody else, survives that container's run and rm -f")
        func foreignCgroupIsLeftAlone() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                // Another MYDOCKER_ROOT (another user, another test) may run a container of the same
                // name: cgroup names are machine-wide, container names are only unique per root.
                let name = box.newName()
                let directory = try Self.cgroupDirectory(named: name)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let other = Spawned(["/bin/sleep", "30"])
                defer {
                    kill(other.pid, SIGKILL)
                    _ = other.finish()
                    rmdir(directory)
                }
                try String(other.pid).write(
                    toFile: directory + "/cgroup.procs", atomically: false, encoding: .utf8)

                // Refusing the name would be fine (one line, exit 125); taking the other's cgroup is not.
                let r = box.run(["run", "-d", "--name", name, "busybox", "sleep", "300"])
                #expect(r.exitCode == 0 || (r.exitCode == 125 && r.stderrLines.count == 1), "\(r)")
                #expect(processState(other.pid) == "S", "run killed PID \(other.pid) in \(directory)\n\(r)")
                let rm = box.run(["rm", "-f", name])
                #expect(
                    processState(other.pid) == "S",
                    "rm -f killed PID \(other.pid) in \(directory)\n\(r)\n\(rm)")
                #expect(
                    FileManager.default.fileExists(atPath: directory),
                    "run or rm -f removed \(directory)\n\(r)\n\(rm)")
                #expect(
                    ((try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? "")
                        == "\(other.pid)\n", "\(directory) holds more than the other process\n\(r)")
                #expect(Self.stateEntries(box.root).isEmpty, "left: \(Self.stateEntries(box.root))")
            }
        }

        // MARK: helpers

        /// Entries of containers/ and overlay/ (the workspace lock of steps 05-07 aside).
        static func stateEntries(_ root: String) -> [String] {
            var entries: [String] = []
            for directory in ["containers", "overlay"] {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + directory))
                    ?? []
                where !name.hasSuffix(".lock") {
                    entries.append(directory + "/" + name)
                }
            }
            return entries.sorted()
        }

        static func status(_ box: Sandbox, _ name: String) -> String? {
            for row in box.run(["ps", "-a"]).stdout.split(separator: "\n").dropFirst() {
                let cells = row.split(separator: " ")
                if cells.count >= 3 && cells[1] == name { return String(cells[cells.count - 2]) }
            }
            return nil
        }

        static func recordedPID(_ box: Sandbox, _ name: String) -> pid_t {
            let path = box.root + "/containers/\(name)/config.json"
            let record =
                (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))))
                as? [String: Any]
            return pid_t(record?["pid"] as? Int ?? 0)
        }

        /// Where the runtime would make the cgroup `name` first: mydocker/NAME in the v2 tree, or in
        /// the v1 memory hierarchy.
        static func cgroupDirectory(named name: String) throws -> String {
            var magic: UInt = 0
            if cs_filesystem_magic("/sys/fs/cgroup", &magic) == 0 && magic == UInt(CGROUP2_SUPER_MAGIC) {
                return "/sys/fs/cgroup/mydocker/\(name)"
            }
            let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            for line in mountinfo.split(separator: "\n") {
                let halves = line.components(separatedBy: " - ")
                guard halves.count == 2 else { continue }
                let fields = halves[0].split(separator: " ")
                let tail = halves[1].split(separator: " ")
                if fields.count > 4, tail.count > 2, tail[0] == "cgroup",
                    tail[2].split(separator: ",").contains("memory")
                {
                    return "\(fields[4])/mydocker/\(name)"
                }
            }
            throw HarnessError("no cgroup v1 memory hierarchy in /proc/self/mountinfo")
        }
    }
}

/// Field 3 of /proc/PID/stat (R, S, T, Z...), or nil when there is no such process.
private func processState(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}

/// Whether `path` is a mount point in our mount namespace.
private func isMountPoint(_ path: String) -> Bool {
    MachineState.readMountPoints().contains(path)
}
