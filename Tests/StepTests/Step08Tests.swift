import CContainerSupport
import Foundation
import Testing

extension Steps {
    /// Step 08: containers outlive the runtime. `run -d` returns at once and leaves the container
    /// running, re-parented away from the runtime; every container has a name, a record
    /// (containers/NAME/config.json), a layer (overlay/NAME) and a cgroup (mydocker/NAME) of its
    /// own; `ps`, `logs`, `stop` and `rm` read the records later. Kernel facts checked: the recorded
    /// PID is trusted only together with its start time (field 22 of /proc/PID/stat), so a reused PID
    /// reads as exited; PID 1 of a PID namespace ignores SIGTERM without a handler, so `stop` needs
    /// SIGKILL after its timeout; a UTS namespace carries the container's name as its hostname.
    @Suite("Step 08: detached containers, names and records", .timeLimit(.minutes(5)))
    struct Step08Tests {
        @Test(
            "run -d returns at once with a 12-hex ID; the container keeps running, in its own session, after the runtime exits",
            .tags(.concept)
        )
        func detachReturnsAtOnce() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let r = box.run(["run", "-d", "--name", name, "busybox", "sleep", "30"])
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    r.stdout.range(of: "^[0-9a-f]{12}\n$", options: .regularExpression) != nil,
                    "Expected a 12-hex-digit ID and a newline as stdout\n\(r)")
                // box.run has waited for the runtime: it is gone, the container is not.
                let row = psRows(box.run(["ps"]).stdout).first { $0["NAME"] == name }
                let pid = row.flatMap { pid_t($0["PID"] ?? "") } ?? 0
                #expect(
                    row?["STATUS"] == "running" && pid > 0,
                    "ps does not list \(name) as running: \(String(describing: row))")
                #expect(kill(pid, 0) == 0, "PID \(pid) from ps is not alive")
                // init may still be setting up (run -d does not wait for the exec): wait for the command.
                #expect(
                    waitUntil { argv(of: pid) == ["sleep", "30"] },
                    "/proc/\(pid)/cmdline is \(argv(of: pid)), expected the container's sleep")
                // setsid(2) in init: a session of its own, so a hangup of the caller's terminal misses it.
                #expect(
                    sessionID(of: pid) == pid,
                    "PID \(pid) is in session \(String(describing: sessionID(of: pid)))")
                // Orphaned when the runtime exited; the test process is a subreaper, so it is ours now.
                #expect(
                    parentPID(of: pid) == getpid(),
                    "PID \(pid)'s parent is \(String(describing: parentPID(of: pid)))")
            }
        }

        @Test(
            "the record config.json holds id, name, pid, pidStartTime, command, created, status, image, volumes",
            .tags(.concept)
        )
        func recordHoldsEverything() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let volume = box.scratch + "/vol"
                let seconds = String(Harness.random(in: 30...90))
                let r = box.run([
                    "run", "-d", "--name", name, "-v", volume + ":/data", "busybox", "sleep", seconds,
                ])
                #expect(r.exitCode == 0, "\(r)")
                let record = try #require(readRecord(box, name), "no readable containers/\(name)/config.json")
                let pid = pid_t(record["pid"] as? Int ?? 0)
                #expect(
                    record["id"] as? String == r.stdout.trimmingCharacters(in: .newlines), "\(record)\n\(r)")
                #expect(record["name"] as? String == name, "\(record)")
                #expect(
                    pid > 0 && waitUntil { argv(of: pid) == ["sleep", seconds] },
                    "pid \(pid) is not the container (\(argv(of: pid))): \(record)")
                #expect(
                    (record["pidStartTime"] as? NSNumber)?.uint64Value == startTime(of: pid),
                    "pidStartTime is not field 22 of /proc/\(pid)/stat (\(String(describing: startTime(of: pid))))\n\(record)"
                )
                #expect(record["command"] as? [String] == ["sleep", seconds], "\(record)")
                #expect(record["status"] as? String == "running", "\(record)")
                #expect(record["image"] as? String == "busybox", "\(record)")
                #expect(record["volumes"] as? [String] == [volume + ":/data"], "\(record)")
                #expect(record["detached"] as? Bool == true, "\(record)")
                let created = (record["created"] as? String).flatMap { recordDateFormat.date(from: $0) }
                #expect(
                    created.map { abs($0.timeIntervalSinceNow) < 120 } == true,
                    "created is not now, in UTC as yyyy-MM-dd HH:mm:ss: \(String(describing: record["created"]))"
                )
                // Written through a temporary file and rename(2): nothing else is left beside it.
                let files = try FileManager.default.contentsOfDirectory(
                    atPath: box.root + "/containers/\(name)")
                #expect(
                    files.sorted() == ["config.json", "container.log"], "containers/\(name) holds \(files)")
            }
        }

        @Test("two detached containers have separate layers and separate cgroups", .tags(.concept))
        func separateLayersAndCgroups() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let names = [box.newName(), box.newName()]
                for (mine, other) in [(names[0], names[1]), (names[1], names[0])] {
                    // Each writes its own file, waits for the go-ahead, then looks for the other's.
                    let script =
                        "echo x > /only-\(mine); while [ ! -e /go ]; do sleep 0.05; done; "
                        + "[ -e /only-\(other) ] && echo sees-\(other) || echo alone"
                    let r = box.run(["run", "-d", "--name", mine, "busybox", "sh", "-c", script])
                    #expect(r.exitCode == 0, "\(r)")
                }
                for name in names {
                    let written = waitUntil {
                        FileManager.default.fileExists(
                            atPath: box.root + "/overlay/\(name)/upper/only-\(name)")
                    }
                    #expect(written, "\(name) never wrote /only-\(name) into overlay/\(name)/upper")
                }
                var pids: [pid_t] = []
                for name in names {
                    let pid = pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
                    pids.append(pid)
                    // Named by the container's ID: names are unique per MYDOCKER_ROOT, IDs everywhere.
                    let id = readRecord(box, name)?["id"] as? String ?? "?"
                    let cgroups = containerCgroups(of: pid)
                    #expect(
                        !cgroups.isEmpty && cgroups.allSatisfy { $0.hasSuffix("/mydocker/\(id)") },
                        "PID \(pid) of \(name) is not (only) in mydocker/\(id): \(cgroupLines(of: pid))")
                    #expect(cgroups.allSatisfy(isDirectory), "missing cgroup directories: \(cgroups)")
                }
                // Writing /go from the host: merged/ is the container's root, seen from outside.
                for name in names {
                    _ = FileManager.default.createFile(
                        atPath: box.root + "/overlay/\(name)/merged/go", contents: nil)
                }
                for name in names {
                    var log = RunResult(
                        commandLine: "", exitCode: -1, stdout: "", stderr: "", timedOut: false)
                    let answered = waitUntil {
                        log = box.run(["logs", name])
                        return log.stdout.hasSuffix("\n")
                    }
                    #expect(
                        answered && log.stdout == "alone\n", "Expected \"alone\\n\" in \(name)'s log\n\(log)")
                }
                #expect(pids[0] != pids[1], "both records have PID \(pids[0])")
            }
        }

        @Test(
            "ps lists a running container; once it exits by itself ps hides it and ps -a shows it exited",
            .tags(.concept))
        func psBeforeAndAfterExit() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let script = "while [ ! -e /exit-now ]; do sleep 0.05; done"
                let r = box.run(["run", "-d", "--name", name, "busybox", "sh", "-c", script])
                #expect(r.exitCode == 0, "\(r)")
                let before = box.run(["ps"])
                #expect(
                    before.stdout.split(separator: "\n").first?.split(separator: " ")
                        == ["ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID"],
                    "Expected the header ID NAME IMAGE COMMAND CREATED STATUS PID\n\(before)")
                let row = psRows(before.stdout).first { $0["NAME"] == name }
                let pid = pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
                #expect(
                    row?["STATUS"] == "running" && row?["PID"] == String(pid) && row?["IMAGE"] == "busybox"
                        && row?["COMMAND"] == "sh -c while [ ! -e /exit-no..."
                        && row?["ID"] == r.stdout.trimmingCharacters(in: .newlines),
                    "Expected \(name) running as PID \(pid)\n\(before)")
                _ = FileManager.default.createFile(
                    atPath: box.root + "/overlay/\(name)/merged/exit-now", contents: nil)
                var all = box.run(["ps", "-a"])
                let exited = waitUntil {
                    all = box.run(["ps", "-a"])
                    return psRows(all.stdout).first { $0["NAME"] == name }?["STATUS"] == "exited"
                }
                #expect(exited, "ps -a never showed \(name) as exited\n\(all)")
                #expect(psRows(all.stdout).first { $0["NAME"] == name }?["PID"] == "-", "\(all)")
                let running = box.run(["ps"])
                #expect(
                    running.exitCode == 0 && psRows(running.stdout).isEmpty,
                    "ps without -a lists an exited container\n\(running)")
            }
        }

        @Test(
            "logs print a detached container's stdout and stderr; a foreground container has no log",
            .tags(.concept))
        func logsShowOutput() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let marker = "m\(Harness.random(in: 10000...99999))"
                let r = box.run([
                    "run", "-d", "--name", name, "busybox", "sh", "-c",
                    "echo out-\(marker); echo err-\(marker) >&2",
                ])
                #expect(r.exitCode == 0, "\(r)")
                var log = box.run(["logs", name])
                let complete = waitUntil {
                    log = box.run(["logs", name])
                    return log.stdout == "out-\(marker)\nerr-\(marker)\n"
                }
                #expect(
                    complete && log.exitCode == 0, "Expected \"out-\(marker)\\nerr-\(marker)\\n\"\n\(log)")
                #expect(
                    r.stdout.hasSuffix("\n") && !r.stdout.contains(marker), "run -d printed the output\n\(r)")

                let foreground = box.newName()
                let running = box.start([
                    "run", "--name", foreground, "busybox", "sh", "-c",
                    "echo up; while [ ! -e /done ]; do sleep 0.05; done",
                ])
                #expect(waitUntil { running.stdoutSoFar == "up\n" }, "the foreground container never started")
                let noLog = box.run(["logs", foreground])
                #expect(noLog.exitCode == 125, "\(noLog)")
                let message =
                    "step08: container '\(foreground)' has no log (only containers started with -d have one)"
                expectOneLineError(noLog, reference: message)
                _ = FileManager.default.createFile(
                    atPath: box.root + "/overlay/\(foreground)/merged/done", contents: nil)
                let finished = running.finish()
                #expect(finished.exitCode == 0 && finished.stdout == "up\n", "\(finished)")
            }
        }

        @Test(
            "stop on a PID 1 that ignores SIGTERM kills it after -t seconds and records it exited",
            .tags(.concept))
        func stopIgnoringSIGTERM() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                // busybox sleep installs no SIGTERM handler: as PID 1 the kernel drops SIGTERM.
                _ = box.run(["run", "-d", "--name", name, "busybox", "sleep", "30"])
                let pid = pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
                #expect(pid > 0 && kill(pid, 0) == 0, "the container is not running (PID \(pid))")
                let started = Date()
                let r = box.run(["stop", "-t", "1", name])
                let elapsed = Date().timeIntervalSince(started)
                #expect(r.exitCode == 0 && r.stdout == name + "\n", "\(r)")
                // It waited the second it was given (a lower bound holds on any machine); the
                // SIGKILL below shows it then stopped waiting.
                #expect(elapsed >= 0.95, "stop -t 1 took \(elapsed) s: it did not wait for the timeout\n\(r)")
                let status = reap(pid)
                #expect(
                    status.map { $0 & 0x7f } == SIGKILL,
                    "PID \(pid) was not killed by SIGKILL: status \(String(describing: status))")
                #expect(
                    readRecord(box, name)?["status"] as? String == "exited", "the record still says running")
                let all = box.run(["ps", "-a"])
                #expect(psRows(all.stdout).first { $0["NAME"] == name }?["STATUS"] == "exited", "\(all)")
            }
        }

        @Test(
            "stop on a PID 1 that handles SIGTERM returns as soon as it exits, well before the timeout",
            .tags(.concept))
        func stopHandlingSIGTERM() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
                _ = box.run(["run", "-d", "--name", name, "busybox", "sh", "-c", script])
                #expect(
                    waitUntil { box.run(["logs", name]).stdout == "ready\n" }, "the container never got ready"
                )
                let pid = pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
                let r = box.run(["stop", name])
                #expect(r.exitCode == 0 && r.stdout == name + "\n", "\(r)")
                // Exit status 0 from the trap, not SIGKILL: SIGTERM ended it before the timeout.
                #expect(reap(pid) == 0, "PID \(pid) did not exit 0 from its trap (killed instead?)")
                #expect(box.run(["logs", name]).stdout == "ready\ngot-term\n", "the trap did not run")
            }
        }

        @Test(
            "rm of a stopped container removes its record, its layer (unmounted) and its cgroups",
            .tags(.concept))
        func rmCleansEverything() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                _ = box.run(["run", "-d", "--name", name, "busybox", "sleep", "30"])
                let pid = pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
                let cgroups = containerCgroups(of: pid)
                #expect(!cgroups.isEmpty, "PID \(pid) is in no mydocker cgroup: \(cgroupLines(of: pid))")
                let stopped = box.run(["stop", "-t", "0", name])
                #expect(stopped.exitCode == 0, "\(stopped)")
                let r = box.run(["rm", name])
                #expect(r.exitCode == 0 && r.stdout == name + "\n", "\(r)")
                expectRemoved(box, name, cgroups: cgroups)
            }
        }

        @Test(
            "rm refuses a running container without -f and leaves it running; rm -f kills and removes it",
            .tags(.concept))
        func rmRefusesRunning() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let started = box.run(["run", "-d", "--name", name, "busybox", "sleep", "30"])
                let pid = pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
                let cgroups = containerCgroups(of: pid)
                guard
                    let recordBefore = try? String(
                        contentsOfFile: box.root + "/containers/\(name)/config.json", encoding: .utf8)
                else {
                    Issue.record("Expected a record containers/\(name)/config.json after run -d\n\(started)")
                    return
                }
                let refused = box.run(["rm", name])
                let message = "step08: container '\(name)' is running (stop it first, or use rm -f)"
                #expect(refused.exitCode == 125, "\(refused)")
                expectOneLineError(refused, reference: message)
                #expect(
                    kill(pid, 0) == 0 && argv(of: pid) == ["sleep", "30"], "rm without -f harmed PID \(pid)")
                let recordAfter = try? String(
                    contentsOfFile: box.root + "/containers/\(name)/config.json", encoding: .utf8)
                #expect(recordAfter == recordBefore, "rm without -f changed the record")
                #expect(isMounted(box.root + "/overlay/\(name)/merged"), "rm without -f unmounted the layer")
                #expect(cgroups.allSatisfy(isDirectory), "rm without -f removed a cgroup: \(cgroups)")

                let forced = box.run(["rm", "-f", name])
                #expect(forced.exitCode == 0 && forced.stdout == name + "\n", "\(forced)")
                #expect(reap(pid).map { $0 & 0x7f } == SIGKILL, "rm -f did not SIGKILL PID \(pid)")
                expectRemoved(box, name, cgroups: cgroups)
            }
        }

        @Test(
            "ps says exited when the record's PID now belongs to an unrelated process; the right start time says running",
            .tags(.concept)
        )
        func reusedPIDIsExited() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                _ = box.run(["run", "-d", "--name", name, "busybox", "sleep", "30"])
                let stopped = box.run(["stop", "-t", "0", name])
                #expect(stopped.exitCode == 0, "\(stopped)")
                let record = try #require(readRecord(box, name), "no record for \(name)")
                let oldStart = (record["pidStartTime"] as? NSNumber)?.uint64Value ?? 0
                // An unrelated live process plays the one that was given the container's PID.
                let stranger = Spawned(["/bin/sleep", "30"])
                defer {
                    kill(stranger.pid, SIGKILL)
                    _ = stranger.finish()
                }
                let strangerStart = try #require(startTime(of: stranger.pid), "no /proc/\(stranger.pid)/stat")
                #expect(
                    strangerStart != oldStart, "the stranger started in the same clock tick as the container")

                try writeRecord(box, name, record.merging(["pid": NSNumber(value: stranger.pid)]) { $1 })
                let all = box.run(["ps", "-a"])
                let row = psRows(all.stdout).first { $0["NAME"] == name }
                #expect(
                    row?["STATUS"] == "exited" && row?["PID"] == "-",
                    "a live PID with the wrong start time reads as running\n\(all)")
                #expect(psRows(box.run(["ps"]).stdout).isEmpty, "ps without -a lists it")
                let stop = box.run(["stop", "-t", "0", name])
                #expect(
                    stop.exitCode == 0 && kill(stranger.pid, 0) == 0 && !stranger.hasExited,
                    "stop killed the stranger\n\(stop)")

                // Positive control: the same PID with its own start time is the container, so: running.
                try writeRecord(
                    box, name,
                    record.merging([
                        "pid": NSNumber(value: stranger.pid), "pidStartTime": NSNumber(value: strangerStart),
                    ]) { $1 })
                let control = box.run(["ps"])
                let controlRow = psRows(control.stdout).first { $0["NAME"] == name }
                #expect(
                    controlRow?["STATUS"] == "running" && controlRow?["PID"] == String(stranger.pid),
                    "the right start time should read as running\n\(control)")
                // Back to the stopped record, so teardown's rm -f has nothing to kill.
                try writeRecord(box, name, record)
            }
        }

        @Test(
            "a foreground container is listed while it runs, removed when it exits, and its exit code passes through",
            .tags(.concept)
        )
        func foregroundIsRemoved() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let code = Int32(Harness.random(in: 1...120))
                let script = "echo up; while [ ! -e /done ]; do sleep 0.05; done; exit \(code)"
                let running = box.start(["run", "--name", name, "busybox", "sh", "-c", script])
                #expect(waitUntil { running.stdoutSoFar == "up\n" }, "the container never started")
                let pid = childPIDs(of: running.pid).first ?? 0
                let listed = box.run(["ps"])
                let row = psRows(listed.stdout).first { $0["NAME"] == name }
                #expect(
                    row?["STATUS"] == "running" && row?["PID"] == String(pid),
                    "Expected \(name) as PID \(pid)\n\(listed)")
                #expect(readRecord(box, name)?["detached"] as? Bool == false, "the record says detached")
                let cgroups = containerCgroups(of: pid)
                _ = FileManager.default.createFile(
                    atPath: box.root + "/overlay/\(name)/merged/done", contents: nil)
                let r = running.finish()
                #expect(r.exitCode == code, "Expected exit \(code)\n\(r)")
                expectRemoved(box, name, cgroups: cgroups)
            }
        }

        @Test(
            "the hostname inside is the container's name, or its ID when it has none; logs and rm take the ID",
            .tags(.concept)
        )
        func hostnameIsName() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let r = box.run(["run", "--name", name, "busybox", "hostname"])
                #expect(
                    r.exitCode == 0 && r.stdout == name + "\n",
                    "Expected \(name.debugDescription) as stdout\n\(r)")
                #expect(hostHostname() != name, "the host's hostname changed")

                let detached = box.run(["run", "-d", "busybox", "hostname"])
                let id = detached.stdout.trimmingCharacters(in: .newlines)
                #expect(detached.exitCode == 0 && id.count == 12, "\(detached)")
                var log = box.run(["logs", id])
                let answered = waitUntil {
                    log = box.run(["logs", id])
                    return log.stdout == id + "\n"
                }
                #expect(answered, "Expected the ID as the hostname in the log\n\(log)")
                let removed = box.run(["rm", "-f", id])
                #expect(removed.exitCode == 0 && removed.stdout == id + "\n", "\(removed)")
                #expect(
                    !FileManager.default.fileExists(atPath: box.root + "/containers/\(id)"),
                    "rm by ID left the record")
            }
        }

        @Test(
            "commit NAME IMAGE saves the container's files, running or stopped; run IMAGE sees them, busybox does not",
            .tags(.concept)
        )
        func commitByName() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let image = "img-\(Harness.random(in: 1000...9999))"
                let content = "c\(Harness.random(in: 10000...99999))"
                let script = "echo \(content) > /committed; echo written; sleep 30"
                _ = box.run(["run", "-d", "--name", name, "busybox", "sh", "-c", script])
                #expect(
                    waitUntil { box.run(["logs", name]).stdout == "written\n" }, "the container never wrote")
                let commit = box.run(["commit", name, image])
                #expect(
                    commit.exitCode == 0 && commit.stdout == box.root + "/images/\(image).tar\n", "\(commit)")
                let fromImage = box.run(["run", image, "cat", "/committed"])
                #expect(fromImage.exitCode == 0 && fromImage.stdout == content + "\n", "\(fromImage)")
                let fromBusybox = box.run(["run", "busybox", "cat", "/committed"])
                #expect(fromBusybox.exitCode == 1, "busybox changed: \(fromBusybox)")
                // The layer stays mounted until rm: a stopped container can be committed too.
                let stopped = box.run(["stop", "-t", "0", name])
                let again = box.run(["commit", name, image + "-stopped"])
                #expect(stopped.exitCode == 0 && again.exitCode == 0, "\(stopped)\n\(again)")
                let fromStopped = box.run(["run", image + "-stopped", "cat", "/committed"])
                #expect(fromStopped.stdout == content + "\n", "\(fromStopped)")
            }
        }

        @Test(
            "a duplicate name is refused with one line, and the first container is untouched", .tags(.concept)
        )
        func duplicateName() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                _ = box.run(["run", "-d", "--name", name, "busybox", "sh", "-c", "echo first; sleep 30"])
                #expect(
                    waitUntil { box.run(["logs", name]).stdout == "first\n" }, "the first container never ran"
                )
                let recordPath = box.root + "/containers/\(name)/config.json"
                let recordBefore = try String(contentsOfFile: recordPath, encoding: .utf8)
                let pid = pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
                let message =
                    "step08: container name '\(name)' is already in use (remove it first: step08 rm -f \(name))"
                for second in [["-d"], []] {
                    let r = box.run(["run"] + second + ["--name", name, "busybox", "echo", "second"])
                    expectOneLineError(r, exitCode: 125, reference: message)
                }
                #expect(
                    try String(contentsOfFile: recordPath, encoding: .utf8) == recordBefore,
                    "the record changed")
                #expect(box.run(["logs", name]).stdout == "first\n", "the log changed")
                // busybox sh execs its last command in place: PID 1 becomes the sleep.
                #expect(
                    kill(pid, 0) == 0 && waitUntil { argv(of: pid) == ["sleep", "30"] },
                    "the first container's PID \(pid) is gone (\(argv(of: pid)))")
                #expect(
                    isMounted(box.root + "/overlay/\(name)/merged"),
                    "the first container's layer was unmounted")
                #expect(
                    containerCgroups(of: pid).allSatisfy(isDirectory) && !containerCgroups(of: pid).isEmpty,
                    "its cgroup is gone")
            }
        }

        @Test(
            "bad input is one line on stderr, exit 125, and nothing is created or removed",
            arguments: [
                // a name that would climb out of containers/
                (
                    ["run", "-d", "--name", "../x", "busybox", "true"],
                    "step08: invalid container name '../x' (1-64 of a-z A-Z 0-9 _ . -, not starting with . or -)"
                ),
                // an empty name
                (
                    ["run", "-d", "--name", "", "busybox", "true"],
                    "step08: invalid container name '' (1-64 of a-z A-Z 0-9 _ . -, not starting with . or -)"
                ),
                // 65 characters, one more than allowed
                (
                    ["run", "-d", "--name", String(repeating: "a", count: 65), "busybox", "true"],
                    "step08: invalid container name '\(String(repeating: "a", count: 65))' (1-64 of a-z A-Z 0-9 _ . -, not starting with . or -)"
                ),
                // a name that would read as a flag
                (
                    ["run", "-d", "--name", "-x", "busybox", "true"],
                    "step08: invalid container name '-x' (1-64 of a-z A-Z 0-9 _ . -, not starting with . or -)"
                ),
                // detached and a terminal at once
                (
                    ["run", "-d", "-t", "busybox", "true"],
                    "step08: -d cannot be combined with -t or -i (a detached container has no terminal)"
                ),
                // logs of a container that does not exist
                (["logs", "NAME"], "step08: no such container: NAME"),
                // stop of a container that does not exist
                (["stop", "NAME"], "step08: no such container: NAME"),
                // rm of a container that does not exist
                (["rm", "NAME"], "step08: no such container: NAME"),
                // rm -f of a container that does not exist either
                (["rm", "-f", "NAME"], "step08: no such container: NAME"),
                // commit of a container that does not exist
                (["commit", "NAME", "someimage"], "step08: no such container: NAME"),
                // a negative stop timeout
                (
                    ["stop", "-t", "-1", "NAME"],
                    "step08: invalid stop timeout '-1' (whole seconds, 0 or more)"
                ),
                // ps takes no container
                (["ps", "extra"], "step08: ps takes no arguments"),
            ])
        func badInput(arguments: [String], message: String) throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let r = box.run(arguments.map { $0 == "NAME" ? name : $0 })
                let expected = message.replacingOccurrences(of: "NAME", with: name)
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: expected)
                for directory in ["containers", "overlay"] {
                    let left =
                        (try? FileManager.default.contentsOfDirectory(atPath: box.root + "/" + directory))
                        ?? []
                    #expect(left.isEmpty, "\(directory)/ holds \(left) after a refused command\n\(r)")
                }
                let images = try FileManager.default.contentsOfDirectory(atPath: box.root + "/images")
                #expect(
                    images.allSatisfy { $0.hasPrefix("busybox") || $0 == ".busybox.lock" },
                    "images/ holds \(images)\n\(r)")
            }
        }

        @Test(
            "a foreground layer is mounted volatile (deleted at exit), a detached one is not (kept until rm)",
            .tags(.concept))
        func onlyForegroundLayersAreVolatile() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let foreground = box.run(["run", "busybox", "sh", "-c", "grep ' / / ' /proc/self/mountinfo"])
                #expect(
                    foreground.exitCode == 0 && Self.isVolatile(foreground.stdout),
                    "Expected the foreground container's root mounted volatile\n\(foreground)")
                let name = box.newName()
                let started = box.run(["run", "-d", "--name", name, "busybox", "sleep", "30"])
                #expect(started.exitCode == 0, "\(started)")
                let merged = box.root + "/overlay/\(name)/merged"
                // Field 5 of a mountinfo line is the mount point.
                let lines = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
                let line = lines.split(separator: "\n").first {
                    $0.split(separator: " ").dropFirst(4).first.map(String.init) == merged
                }
                #expect(line != nil, "\(merged) is not mounted after run -d\n\(started)")
                #expect(
                    line.map { !Self.isVolatile(String($0)) } ?? false,
                    "A detached container's layer must survive a crash: no volatile\n\(line ?? "")")
            }
        }

        /// Whether the superblock options at the end of a mountinfo line (`... - overlay overlay
        /// rw,lowerdir=...`) say volatile: `volatile`, or `fsync=volatile` on newer kernels (6.18 here).
        static func isVolatile(_ line: String) -> Bool {
            let fields = (line.components(separatedBy: " - ").last ?? "").split(separator: " ")
            let options =
                fields.last.map { $0.trimmingCharacters(in: .newlines).components(separatedBy: ",") } ?? []
            return options.contains("volatile") || options.contains("fsync=volatile")
        }

        @Test("step07 has neither -d nor ps: detaching and listing are this step's")
        func previousStepLacksDetach() throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let detach = box.run(step: "step07", ["run", "-d", "busybox", "true"])
                #expect(
                    detach.exitCode == 125
                        && detach.stderrLines == ["step07: unknown flag '-d' (see step07 run --help)"],
                    "\(detach)")
                let ps = box.run(step: "step07", ["ps"])
                #expect(
                    ps.exitCode == 125
                        && ps.stderrLines == ["step07: unknown command 'ps' (try: step07 --help)"], "\(ps)")
            }
        }

        @Test(
            "earlier guarantees still hold",
            arguments: [
                // step 02: the command is PID 1 of its own PID namespace
                (["busybox", "sh", "-c", "echo $$"], "1\n"),
                // step 02: /proc is the container's, so ps sees only itself
                (["busybox", "ps", "-o", "pid,args"], "PID   COMMAND\n    1 ps -o pid,args\n"),
                // step 04: the command arrives over the pipe with its spaces intact
                (["busybox", "echo", "a  b"], "a  b\n"),
                // step 05: the root is the busybox image; the host's files (this sandbox) are unreachable
                (["busybox", "sh", "-c", "test -e ROOT || echo no-host-files"], "no-host-files\n"),
                // step 06: a volume shows the host directory's file
                (["-v", "VOLUME:/data", "busybox", "cat", "/data/file"], "from-the-host\n"),
                // step 07: run takes the image first, and an unknown image is refused
                (["no-such-image", "true"], ""),
            ])
        func earlierGuarantees(arguments: [String], stdout: String) throws {
            try withSandbox("step08", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let volume = box.scratch + "/vol"
                try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
                try "from-the-host\n".write(toFile: volume + "/file", atomically: true, encoding: .utf8)
                let r = box.run(
                    ["run"]
                        + arguments.map {
                            $0.replacingOccurrences(of: "VOLUME", with: volume).replacingOccurrences(
                                of: "ROOT", with: box.root)
                        })
                if stdout.isEmpty {
                    let message =
                        "step08: rootfs image 'no-such-image' not found under \(box.root)/images (import a tarball with: sudo rootfs-tools/import-image.sh no-such-image FILE.tar)"
                    expectOneLineError(r, exitCode: 125, reference: message)
                } else {
                    #expect(
                        r.exitCode == 0 && r.stdout == stdout,
                        "Expected \(stdout.debugDescription) as stdout\n\(r)")
                }
            }
        }
    }
}

// MARK: helpers

/// `ps` output as one dictionary per row, keyed by the header's words: a column starts where its
/// header word starts (CREATED holds a space, so splitting on spaces would not do).
private func psRows(_ text: String) -> [[String: String]] {
    let lines = text.split(separator: "\n").map { Array($0) }
    guard let header = lines.first else { return [] }
    var starts: [Int] = []
    for index in header.indices where header[index] != " " && (index == 0 || header[index - 1] == " ") {
        starts.append(index)
    }
    let names = starts.indices.map { column in
        String(header[starts[column]..<(column + 1 < starts.count ? starts[column + 1] : header.count)])
            .trimmingCharacters(in: .whitespaces)
    }
    return lines.dropFirst().map { line in
        var row: [String: String] = [:]
        for column in starts.indices {
            let start = min(starts[column], line.count)
            let end = column + 1 < starts.count ? min(starts[column + 1], line.count) : line.count
            row[names[column]] = String(line[start..<end]).trimmingCharacters(in: .whitespaces)
        }
        return row
    }
}

/// containers/NAME/config.json, decoded without the runtime's types.
private func readRecord(_ box: Sandbox, _ name: String) -> [String: Any]? {
    let url = URL(fileURLWithPath: box.root + "/containers/\(name)/config.json")
    guard let data = try? Data(contentsOf: url) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
}

/// Rewrites a record in place, as a later runtime would find it.
private func writeRecord(_ box: Sandbox, _ name: String, _ record: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
    try data.write(to: URL(fileURLWithPath: box.root + "/containers/\(name)/config.json"))
}

/// Records store `created` in UTC as `2026-11-25 14:55:01`.
private let recordDateFormat: DateFormatter = {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter
}()

/// The fields of /proc/PID/stat after the command name, which sits in parentheses: [0] is field 3.
private func statFields(of pid: pid_t) -> [Substring] {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return [] }
    return stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.
private func startTime(of pid: pid_t) -> UInt64? {
    let fields = statFields(of: pid)
    return fields.count > 19 ? UInt64(fields[19]) : nil
}

private func parentPID(of pid: pid_t) -> pid_t? {
    let fields = statFields(of: pid)
    return fields.count > 1 ? pid_t(fields[1]) : nil
}

/// Field 6 of /proc/PID/stat: the session the process belongs to.
private func sessionID(of pid: pid_t) -> pid_t? {
    let fields = statFields(of: pid)
    return fields.count > 3 ? pid_t(fields[3]) : nil
}

/// /proc/PID/cmdline split at its NULs.
private func argv(of pid: pid_t) -> [String] {
    let data = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
    return data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
        String(decoding: $0, as: UTF8.self)
    }
}

/// Waits for a container's PID 1, which is our child since its runtime exited (we are a
/// subreaper), and returns its raw wait status.
private func reap(_ pid: pid_t) -> Int32? {
    var status: Int32 = 0
    var reaped = false
    waitUntil {
        reaped = waitpid(pid, &status, WNOHANG) == pid
        return reaped
    }
    return reaped ? status : nil
}

/// Is /sys/fs/cgroup the unified (v2) hierarchy? statfs(2)'s magic number says, as the runtime asks.
private let cgroupV2: Bool = {
    var magic: UInt = 0
    return cs_filesystem_magic("/sys/fs/cgroup", &magic) == 0 && magic == UInt(CGROUP2_SUPER_MAGIC)
}()

private func cgroupLines(of pid: pid_t) -> String {
    (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? "(no /proc/\(pid)/cgroup)"
}

/// The cgroup directories the step puts a container in, from /proc/PID/cgroup. v2: the one
/// `0::/mydocker/NAME` line. v1: the memory, cpu and cpuset hierarchies (the step's controllers),
/// each mounted at /sys/fs/cgroup/<its controller list>, e.g. `cpu,cpuacct`. Empty if any of them
/// is not under mydocker/.
private func containerCgroups(of pid: pid_t) -> [String] {
    var directories: [String] = []
    var found: Set<String> = []
    for line in cgroupLines(of: pid).split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].hasPrefix("/mydocker/") else { continue }
        if cgroupV2, parts[0] == "0" {
            directories.append("/sys/fs/cgroup" + parts[2])
            found.insert("unified")
        } else if !cgroupV2, parts[0] != "0" {
            let controllers = Set(parts[1].split(separator: ",").map(String.init))
            guard !controllers.isDisjoint(with: ["memory", "cpu", "cpuset"]) else { continue }
            directories.append("/sys/fs/cgroup/\(parts[1])" + parts[2])
            found.formUnion(controllers)
        }
    }
    let wanted: Set<String> = cgroupV2 ? ["unified"] : ["memory", "cpu", "cpuset"]
    return wanted.isSubset(of: found) ? directories : []
}

private func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
}

private func isMounted(_ path: String) -> Bool {
    MachineState.readMountPoints().contains(path)
}

/// Everything a container had is gone: record directory, layer (and its mount), cgroups, ps row.
private func expectRemoved(
    _ box: Sandbox, _ name: String, cgroups: [String], sourceLocation: SourceLocation = #_sourceLocation
) {
    let fm = FileManager.default
    #expect(
        !fm.fileExists(atPath: box.root + "/containers/\(name)"), "containers/\(name) is still there",
        sourceLocation: sourceLocation)
    #expect(
        !fm.fileExists(atPath: box.root + "/overlay/\(name)"), "overlay/\(name) is still there",
        sourceLocation: sourceLocation)
    #expect(
        !isMounted(box.root + "/overlay/\(name)/merged"), "overlay/\(name)/merged is still mounted",
        sourceLocation: sourceLocation)
    #expect(
        !cgroups.isEmpty, "no cgroups were recorded for \(name) while it ran", sourceLocation: sourceLocation)
    let left = cgroups.filter(isDirectory)
    #expect(left.isEmpty, "cgroups left: \(left)", sourceLocation: sourceLocation)
    let all = box.run(["ps", "-a"])
    #expect(
        all.exitCode == 0 && !all.stdout.contains(name), "ps -a still lists \(name)\n\(all)",
        sourceLocation: sourceLocation)
}
