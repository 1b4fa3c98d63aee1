import CContainerSupport
import Foundation
import Testing

extension Steps {
    /// Step 03: `run` makes a cgroup of its own for every container (`mydocker/ID` in each v1
    /// hierarchy, or in the v2 unified tree), writes the limits asked for, and puts the child into it
    /// while init still waits on the sync pipe (fd 3). Kernel facts checked: the limit files hold the
    /// values; the container's first command already runs in the cgroup; a cpuset narrows the CPUs
    /// the scheduler allows; the memory cgroup's OOM killer kills what goes over the limit and counts
    /// the kill; rmdir removes the cgroup after every kind of exit. Each test checks the v1 files on a
    /// v1 (or hybrid) host and the v2 files on a v2 host, decided at run time by statfs.
    @Suite("Step 03: cgroups", .timeLimit(.minutes(5)))
    struct Step03Tests {
        @Test(
            "the limit files hold the values asked for, in either spelling of the flags", .tags(.concept),
            arguments: [
                // the tutorial's spelling
                ("-m", "-cpushare", "-cpuset"),
                // docker's spelling
                ("--memory", "--cpu-shares", "--cpuset-cpus"),
            ])
        func limitFilesHoldTheValues(memoryFlag: String, sharesFlag: String, cpusetFlag: String) throws {
            try withSandbox("step03") { box in
                let mib = Harness.random(in: 16...512)
                let shares = Harness.random(in: 2...262_144)
                let cpu = Self.randomOnlineCPU()
                let running = box.start([
                    "run", memoryFlag, "\(mib)m", sharesFlag, "\(shares)", cpusetFlag, "\(cpu)",
                    "sleep", "30",
                ])
                guard let pid1 = Self.waitForCommand("sleep", in: running) else {
                    kill(running.pid, SIGKILL)
                    Issue.record("the container's sleep never started\n\(running.finish())")
                    return
                }
                let cgroups = Self.containerCgroups(of: "\(pid1)")
                let evidence = "\(running.commandLine)\ncgroups of PID \(pid1): \(cgroups)"
                if Self.isCgroupV2 {
                    let dir = cgroups["unified"] ?? "?"
                    let weight = 1 + ((shares - 2) * 9999) / 262_142
                    #expect(Self.value(dir + "/memory.max") == "\(mib << 20)", "\(evidence)")
                    #expect(Self.value(dir + "/cpu.weight") == "\(weight)", "runc's formula\n\(evidence)")
                    #expect(Self.value(dir + "/cpuset.cpus") == "\(cpu)", "\(evidence)")
                    let enabled = Self.value("/sys/fs/cgroup/mydocker/cgroup.subtree_control") ?? ""
                    #expect(
                        ["memory", "cpu", "cpuset"].allSatisfy(enabled.split(separator: " ").contains),
                        "mydocker/ must hand memory, cpu and cpuset to its children: \(enabled)")
                } else {
                    let memory = cgroups["memory"] ?? "?"
                    let cpuDir = cgroups["cpu"] ?? "?"
                    let cpuset = cgroups["cpuset"] ?? "?"
                    #expect(Self.value(memory + "/memory.limit_in_bytes") == "\(mib << 20)", "\(evidence)")
                    #expect(Self.value(cpuDir + "/cpu.shares") == "\(shares)", "\(evidence)")
                    #expect(Self.value(cpuset + "/cpuset.cpus") == "\(cpu)", "\(evidence)")
                    // An empty cpuset.mems would have refused the PID: it is copied from the parent.
                    let mems = Self.value(cpuset + "/cpuset.mems") ?? ""
                    #expect(!mems.isEmpty, "cpuset.mems is empty\n\(evidence)")
                }
                // SIGKILL from the parent namespace: sleep, as PID 1, has no handler for anything else.
                kill(pid1, SIGKILL)
                let r = running.finish()
                #expect(r.exitCode == 137, "\(r)")
                for dir in cgroups.values {
                    #expect(
                        !FileManager.default.fileExists(atPath: dir), "\(dir) is left after the run\n\(r)")
                }
            }
        }

        @Test(
            "/proc/self/cgroup of the container's very first command names its own mydocker/ID cgroup",
            .tags(.concept))
        func firstCommandRunsInTheCgroup() throws {
            try withSandbox("step03") { box in
                // cat is PID 1 here: the first program of the user's that runs, so it proves the
                // child was in the cgroup before init let it exec.
                var ids: [String] = []
                for _ in 1...2 {
                    let r = box.run(["run", "cat", "/proc/self/cgroup"])
                    #expect(r.exitCode == 0, "\(r)")
                    let paths = Self.containerCgroupPaths(in: r.stdout)
                    let wanted = Self.isCgroupV2 ? ["unified"] : ["memory", "cpu", "cpuset"]
                    #expect(
                        paths.keys.sorted() == wanted.sorted(), "Expected /mydocker/ID for \(wanted)\n\(r)")
                    let distinct = Set(paths.values)
                    #expect(distinct.count == 1, "one cgroup, the same in every hierarchy\n\(r)")
                    let id = String(distinct.first?.dropFirst("/mydocker/".count) ?? "")
                    // Named after the runtime's PID, `run-4242` (no record until step 08).
                    #expect(
                        id.hasPrefix("run-") && Int32(id.dropFirst(4)) != nil,
                        "Expected run-PID, got \(id)\n\(r)")
                    ids.append(id)
                }
                #expect(Set(ids).count == 2, "two runs shared a cgroup: \(ids)")
            }
        }

        @Test(
            "while the runtime is held between clone and the cgroup join, init waits on fd 3 and runs nothing",
            .tags(.traceMarks), .disabled(if: Harness.workbench != nil, Harness.noTraceMarksInWorkbench)
        )
        func initWaitsWhileTheRuntimeIsHeld() throws {
            try withSandbox("step03") { box in
                let marker = box.scratch + "/ran"
                // MYDOCKER_TEST_PAUSE_AT=clone: the runtime stops itself (SIGSTOP) right after clone,
                // before it writes the child's PID to any cgroup.procs.
                let running = box.start(
                    ["run", "-m", "100m", "sh", "-c", "touch \(marker)"],
                    environment: ["MYDOCKER_TEST_PAUSE_AT": "clone"])
                var child: pid_t = 0
                let held = waitUntil {
                    child = childPIDs(of: running.pid).first ?? 0
                    return Self.state(of: running.pid) == "T" && child > 0
                        && Self.value("/proc/\(child)/wchan")?.contains("pipe") == true
                }
                let cmdline = (Self.value("/proc/\(child)/cmdline") ?? "").replacingOccurrences(
                    of: "\0", with: " ")
                let cgroups = Self.value("/proc/\(child)/cgroup") ?? ""
                #expect(
                    held,
                    "the runtime never stopped with its child blocked on the pipe: child \(child) \(cmdline)")
                #expect(
                    cmdline.hasPrefix(Harness.programName("step03") + " init "),
                    "Expected init, not the command, got \(cmdline)")
                #expect(!cgroups.contains("/mydocker/"), "the child is in its cgroup already:\n\(cgroups)")
                #expect(
                    !FileManager.default.fileExists(atPath: marker), "the command ran before the cgroup join")
                kill(running.pid, SIGCONT)
                let r = running.finish()
                #expect(r.exitCode == 0, "\(r)")
                #expect(FileManager.default.fileExists(atPath: marker), "the command never ran\n\(r)")
            }
        }

        @Test(
            "init runs nothing until the runtime writes the go byte on fd 3", .tags(.concept),
            arguments: [
                // the pipe's end-of-file: the runtime died before it placed the child in its cgroup
                ("", Int32(125), "", ["step03: the runtime exited before it started the container"]),
                // the go byte: the child is in its cgroup, init goes on and execs the command
                ("x", Int32(0), "ran\n", []),
            ])
        func initWaitsForTheGoByte(byte: String, code: Int32, stdout: String, stderr: [Substring]) throws {
            try withSandbox("step03") { box in
                // Without the runtime: unshare gives init the PID 1 it insists on, and a mount namespace
                // of its own for its /proc; fd 3 is a file holding the byte or nothing.
                let pipe = box.scratch + "/fd3"
                try Data(byte.utf8).write(to: URL(fileURLWithPath: pipe))
                let r = runProcess([
                    "/bin/sh", "-c",
                    "exec unshare --fork --pid --mount \(Harness.binary("step03")) init -- echo ran 3<\(pipe)",
                ])
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == stdout, "Expected \(stdout.debugDescription) as stdout\n\(r)")
                expectStderr(r, reference: stderr)
            }
        }

        @Test("Cpus_allowed_list in /proc/self/status inside is the -cpuset list", .tags(.concept))
        func cpusAllowedMatchesCpuset() throws {
            try withSandbox("step03") { box in
                let cpu = Self.randomOnlineCPU()
                let r = box.run([
                    "run", "-cpuset", "\(cpu)", "grep", "Cpus_allowed_list", "/proc/self/status",
                ])
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    r.stdout == "Cpus_allowed_list:\t\(cpu)\n",
                    "Expected \("Cpus_allowed_list:\t\(cpu)\n".debugDescription) as stdout\n\(r)")
            }
        }

        @Test(
            "a 200 MB allocation under -m 100m is OOM-killed (137), and the cgroup's oom_kill counter rose",
            .tags(.concept))
        func allocationOverTheLimitIsOOMKilled() throws {
            try withSandbox("step03") { box in
                let dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"]
                // The same allocation without a limit succeeds: the kill is the limit's doing.
                let free = box.run(["run"] + dd)
                #expect(free.exitCode == 0, "\(free)")
                let limited = box.run(["run", "-m", "100m"] + dd)
                #expect(limited.exitCode == 137, "Expected 128+SIGKILL\n\(limited)")
                // Inside one container: dd dies, the shell lives on and reads its own cgroup's counter.
                let counter =
                    Self.isCgroupV2
                    ? "p=$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup); "
                        + "grep '^oom_kill ' /sys/fs/cgroup$p/memory.events"
                    : "p=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup); "
                        + "grep '^oom_kill ' \(Self.v1MountPoint("memory") ?? "?")$p/memory.oom_control"
                let r = box.run([
                    "run", "-m", "100m", "sh", "-c", dd.joined(separator: " ") + "; echo dd=$?; " + counter,
                ])
                let lines = r.stdout.split(separator: "\n")
                let kills = lines.first { $0.hasPrefix("oom_kill ") }.flatMap {
                    Int($0.dropFirst("oom_kill ".count))
                }
                #expect(r.exitCode == 0 && lines.first == "dd=137", "\(r)")
                #expect((kills ?? 0) >= 1, "Expected oom_kill >= 1\n\(r)")
            }
        }

        @Test(
            "no cgroup directory is left after the container exits, however it ends", .tags(.concept),
            arguments: [
                // a normal exit
                (["sh", "-c", "cat /proc/self/cgroup"], Int32(0)),
                // PID 1 OOM-killed: the kernel's SIGKILL, not ours
                (
                    [
                        "-m", "100m", "sh", "-c",
                        "cat /proc/self/cgroup; exec dd if=/dev/zero of=/dev/null bs=200M count=1",
                    ], Int32(137)
                ),
                // command not found, as a shell reports it
                (["sh", "-c", "cat /proc/self/cgroup; exec no-such-command-xyz"], Int32(127)),
                // command not found by init itself: nothing printed, so only the before/after count
                (["no-such-command-xyz"], Int32(127)),
            ])
        func noCgroupLeftAfterExit(arguments: [String], code: Int32) throws {
            try withSandbox("step03") { box in
                let before = MachineState.readContainerCgroups()
                let cpu = Self.onlineCPUNumbers.first ?? 0
                let r = box.run(["run", "-cpushare", "512", "-cpuset", "\(cpu)"] + arguments)
                #expect(r.exitCode == code, "\(r)")
                let dirs = Self.containerCgroupPaths(in: r.stdout).map(Self.hostDirectory)
                if arguments.joined(separator: " ").contains("cat /proc/self/cgroup") {
                    #expect(!dirs.isEmpty, "the container printed no mydocker cgroup\n\(r)")
                }
                for dir in dirs {
                    #expect(
                        !FileManager.default.fileExists(atPath: dir), "\(dir) is left after the run\n\(r)")
                }
                let left = Self.emptyCgroups(MachineState.readContainerCgroups().subtracting(before))
                #expect(left.isEmpty, "cgroups left: \(left)\n\(r)")
            }
        }

        @Test(
            "a signal sent to the runtime is forwarded, and the cgroup is removed once the container exits",
            .tags(.concept),
            arguments: [
                // what a supervisor or `kill` sends
                (SIGTERM, Int32(3)),
                // what `kill -INT` sends (Ctrl-C in a terminal reaches the container directly)
                (SIGINT, Int32(4)),
            ])
        func cgroupRemovedAfterSignal(signal: Int32, code: Int32) throws {
            try withSandbox("step03") { box in
                let script = "trap 'exit 3' TERM; trap 'exit 4' INT; echo ready; while :; do sleep 0.05; done"
                let running = box.start(["run", "-m", "100m", "sh", "-c", script])
                #expect(waitUntil { running.stdoutSoFar.contains("ready") }, "the container never started")
                let pid1 = childPIDs(of: running.pid).first ?? 0
                let cgroups = Self.containerCgroups(of: "\(pid1)")
                #expect(!cgroups.isEmpty, "PID \(pid1) is in no mydocker cgroup")
                kill(running.pid, signal)
                let r = running.finish()
                #expect(r.exitCode == code, "\(r)")
                for dir in cgroups.values {
                    #expect(
                        !FileManager.default.fileExists(atPath: dir), "\(dir) is left after the run\n\(r)")
                }
            }
        }

        @Test(
            "a SIGTERM that reaches the runtime just after it made the cgroup leaves no cgroup behind",
            .tags(.traceMarks), .disabled(if: Harness.workbench != nil, Harness.noTraceMarksInWorkbench)
        )
        func sigtermBeforeTheCloneLeavesNoCgroup() throws {
            try withSandbox("step03") { box in
                let before = MachineState.readContainerCgroups()
                // MYDOCKER_TEST_PAUSE_AT=cgroup: the runtime stops itself right after Cgroup.create,
                // before the container exists.
                let running = box.start(
                    ["run", "-m", "100m", "true"], environment: ["MYDOCKER_TEST_PAUSE_AT": "cgroup"])
                #expect(waitUntil { Self.state(of: running.pid) == "T" }, "the runtime never stopped")
                kill(running.pid, SIGTERM)
                kill(running.pid, SIGCONT)
                let r = running.finish()
                let left = Self.emptyCgroups(MachineState.readContainerCgroups().subtracting(before))
                #expect(left.isEmpty, "cgroups left: \(left)\n\(r)")
                // The signal was held until the container existed, then forwarded to it.
                #expect(r.exitCode == 0 || r.exitCode == 143, "\(r)")
                // Remove anything left, deepest first, so the residue check can judge the rest.
                for dir in left.sorted(by: { $0.count > $1.count }) { rmdir(dir) }
            }
        }

        @Test(
            "bad limits are one line on stderr, exit 125, and no cgroup is made",
            arguments: [
                // a unit that does not exist
                (
                    ["-m", "10x"],
                    "step03: invalid memory size '10x' (use a number with b, k, m or g, e.g. 100m)"
                ),
                // a negative size
                (
                    ["-m", "-5"],
                    "step03: invalid memory size '-5' (use a number with b, k, m or g, e.g. 100m)"
                ),
                // below docker's floor of 6 MiB
                (["--memory", "0"], "step03: memory size '0' is too small (minimum 6m)"),
                // below the kernel's minimum of 2 shares
                (
                    ["-cpushare", "0"],
                    "step03: invalid cpu shares '0' (use a number from 2 to 262144, default 1024)"
                ),
                // not a number
                (
                    ["--cpu-shares", "abc"],
                    "step03: invalid cpu shares 'abc' (use a number from 2 to 262144, default 1024)"
                ),
                // a CPU that is not online (one past the highest online CPU on this machine)
                (
                    ["-cpuset", "\(Step03Tests.offlineCPU)"],
                    "step03: CPU \(Step03Tests.offlineCPU) in '\(Step03Tests.offlineCPU)' is not online "
                        + "(online CPUs: \(Step03Tests.onlineCPUs))"
                ),
                // not a CPU list at all
                (["-cpuset", "a-b"], "step03: invalid CPU list 'a-b' (use e.g. 0, 0-1 or 0,2)"),
                // a range backwards
                (["--cpuset-cpus", "1-0"], "step03: invalid CPU list '1-0' (use e.g. 0, 0-1 or 0,2)"),
            ])
        func badLimits(flags: [String], message: String) throws {
            try withSandbox("step03") { box in
                let before = MachineState.read()
                let r = box.run(["run"] + flags + ["true"])
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: message)
                let now = MachineState.read()
                let cgroups = Self.emptyCgroups(now.cgroups.subtracting(before.cgroups))
                #expect(cgroups.isEmpty, "cgroups were made: \(cgroups)\n\(r)")
                // Mounts under /tmp/mydocker-* belong to somebody's manual run, as in the harness.
                let mounts = now.mounts.values.filter {
                    before.mounts[$0.id] == nil && !$0.point.hasPrefix("/tmp/mydocker-")
                }
                #expect(mounts.isEmpty, "mounts were made: \(mounts.map(\.point))\n\(r)")
            }
        }

        @Test("a limit flag with no value is one line on stderr and exit 125")
        func flagWithoutValue() throws {
            try withSandbox("step03") { box in
                let r = box.run(["run", "-m"])
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: "step03: flag -m needs a value (SIZE)")
            }
        }

        @Test("step02 has no limits: it rejects -m, and its container is in no mydocker cgroup")
        func step02HasNoCgroups() throws {
            try withSandbox("step03") { box in
                let flag = box.run(step: "step02", ["run", "-m", "100m", "true"])
                #expect(flag.exitCode == 125, "\(flag)")
                #expect(flag.stderrLines == ["step02: unknown flag '-m' (see step02 run --help)"], "\(flag)")
                let old = box.run(step: "step02", ["run", "cat", "/proc/self/cgroup"])
                #expect(old.exitCode == 0, "\(old)")
                #expect(
                    !old.stdout.contains("/mydocker/"), "step02's container is in a mydocker cgroup\n\(old)")
            }
        }

        @Test(
            "step02's guarantees still hold",
            arguments: [
                // the command is PID 1 of its own PID namespace
                (["sh", "-c", "echo $$"], Int32(0), "1\n", [Substring]()),
                // exit codes pass through (a random one)
                (["sh", "-c", "exit \(Step03Tests.passThroughCode)"], Step03Tests.passThroughCode, "", []),
                // a missing command is 127, with init's one line
                (
                    ["no-such-command-xyz"], Int32(127), "",
                    ["step03: exec no-such-command-xyz: No such file or directory (ENOENT)"]
                ),
            ])
        func step02GuaranteesHold(command: [String], code: Int32, stdout: String, stderr: [Substring]) throws
        {
            try withSandbox("step03") { box in
                let r = box.run(["run", "-m", "100m"] + command)
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == stdout, "Expected \(stdout.debugDescription) as stdout\n\(r)")
                expectStderr(r, reference: stderr)
            }
        }

        // MARK: helpers

        static let passThroughCode = Int32(Harness.random(in: 1...120))

        /// The same test the runtime makes: on a v2 host /sys/fs/cgroup is a cgroup2 filesystem.
        static let isCgroupV2: Bool = {
            var magic: UInt = 0
            return cs_filesystem_magic("/sys/fs/cgroup", &magic) == 0 && magic == UInt(CGROUP2_SUPER_MAGIC)
        }()

        /// /sys/devices/system/cpu/online, e.g. `0-1`.
        static let onlineCPUs: String =
            ((try? String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)) ?? "0")
            .trimmingCharacters(in: .whitespacesAndNewlines)

        static var onlineCPUNumbers: [Int] {
            onlineCPUs.split(separator: ",").flatMap { part -> [Int] in
                let bounds = part.split(separator: "-").compactMap { Int($0) }
                return bounds.count == 2 ? Array(bounds[0]...bounds[1]) : bounds
            }
        }

        static var offlineCPU: Int { (onlineCPUNumbers.max() ?? 0) + 1 }

        static func randomOnlineCPU() -> Int {
            let cpus = onlineCPUNumbers
            return cpus[Harness.random(in: 0...(cpus.count - 1))]
        }

        /// Where the v1 hierarchy that carries `controller` is mounted, from /proc/self/mountinfo
        /// (`/sys/fs/cgroup/memory`, or `/sys/fs/cgroup/cpu,cpuacct` where cpu shares a hierarchy).
        static func v1MountPoint(_ controller: String) -> String? {
            let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                let halves = line.components(separatedBy: " - ")
                guard halves.count == 2 else { continue }
                let fields = halves[0].split(separator: " ")
                let tail = halves[1].split(separator: " ")
                if fields.count > 4, tail.count > 2, tail[0] == "cgroup",
                    tail[2].split(separator: ",").contains(Substring(controller))
                {
                    return String(fields[4])
                }
            }
            return nil
        }

        /// The container cgroups named in a /proc/PID/cgroup text, by controller: v1 lines such as
        /// `4:memory:/mydocker/ID` give memory, cpu and cpuset; v2's `0::/mydocker/ID` gives unified.
        static func containerCgroupPaths(in text: String) -> [String: String] {
            var result: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard fields.count == 3, fields[2].hasPrefix("/mydocker/") else { continue }
                if isCgroupV2 {
                    if fields[0] == "0" { result["unified"] = String(fields[2]) }
                    continue
                }
                for controller in ["memory", "cpu", "cpuset"]
                where fields[1].split(separator: ",").contains(Substring(controller)) {
                    result[controller] = String(fields[2])
                }
            }
            return result
        }

        /// `(memory, /mydocker/ID)` -> `/sys/fs/cgroup/memory/mydocker/ID` on v1; on v2 the unified tree.
        static func hostDirectory(_ entry: (key: String, value: String)) -> String {
            let mount = entry.key == "unified" ? "/sys/fs/cgroup" : v1MountPoint(entry.key) ?? "?"
            return mount + entry.value
        }

        /// The host directories of the cgroups a process is in, read from the host's /proc/PID/cgroup.
        static func containerCgroups(of pid: String) -> [String: String] {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
            return containerCgroupPaths(in: text).reduce(into: [:]) { $0[$1.key] = hostDirectory($1) }
        }

        /// A kernel file's value without its newline, or nil if it cannot be read.
        static func value(_ path: String) -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
        }

        /// The state letter of a process, field 3 of /proc/PID/stat: `T` when stopped.
        static func state(of pid: pid_t) -> Character? {
            guard let stat = value("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else {
                return nil
            }
            return stat[stat.index(after: close)...].first { $0 != " " }
        }

        /// The cgroups with no process in them: another helper's container running by hand at the
        /// same time has one, ours (if any were left) would not.
        static func emptyCgroups(_ cgroups: Set<String>) -> [String] {
            cgroups.filter { (value($0 + "/cgroup.procs") ?? "").isEmpty }.sorted()
        }

        /// The runtime's child (the container's PID 1 as the host numbers it), once it runs `command`.
        static func waitForCommand(_ command: String, in running: Spawned) -> pid_t? {
            var pid1: pid_t = 0
            let found = waitUntil {
                pid1 = childPIDs(of: running.pid).first ?? 0
                let cmdline = (try? String(contentsOfFile: "/proc/\(pid1)/cmdline", encoding: .utf8)) ?? ""
                return pid1 > 0 && cmdline.hasPrefix(command + "\0")
            }
            return found ? pid1 : nil
        }
    }
}
