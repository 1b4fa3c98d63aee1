import Foundation
import Testing

extension Steps {
    /// exec (steps 09, 10 and 12) is the one door from the host into a running container, so nothing a
    /// user or a container writes may steer it. Kernel facts checked: only descriptors 0, 1 and 2
    /// survive into the exec'd command, whatever the caller left open (runc's CVE-2024-21626); the
    /// constructor is woken by argv and descriptors the runtime set up, never by an environment
    /// variable, and the host's dynamic loader never sees the container's environment; a pidfd
    /// holds the container's PID 1, so a PID reused after the check is never joined; steps 01-08
    /// do not contain the constructor at all.
    @Suite("exec: no way in for the caller's or the container's data", .timeLimit(.minutes(5)))
    struct ExecSafetyTests {
        /// Step 11 joins the default network unless told otherwise; these tests need no network,
        /// and --net none keeps the host's untouched.
        static func noNetwork(_ step: String) -> [String] { step == "step11" ? ["--net", "none"] : [] }

        @Test(
            "a descriptor the caller left open (9</etc) does not reach the exec'd command",
            arguments: ["step09", "step10", "step11", "step12"])
        func inheritedDescriptorStaysOut(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Step09Tests.startContainer(box, name, Self.noNetwork(step)) != nil else { return }
                // The shell opens fd 9 without close-on-exec and execs the runtime, as a user's
                // shell would. ls lists its own descriptors: 0, 1, 2 and 3, the directory it is
                // reading. Anything inherited would be one more (and push ls's own to 4).
                let script = "exec 9</etc; exec \"$0\" exec \"$1\" ls /proc/self/fd/"
                let r = runProcess(
                    ["/bin/sh", "-c", script, Harness.binary(step), name],
                    environment: ["MYDOCKER_ROOT": box.root])
                #expect(r.exitCode == 0, "\(r)")
                let fds = r.stdout.split(separator: "\n").sorted()
                #expect(fds == ["0", "1", "2", "3"], "descriptors beyond 0, 1, 2 reached the command\n\(r)")
            }
        }

        @Test(
            "MYDOCKER_EXEC_PID=1 in the caller's environment changes nothing for exec, ps and run",
            arguments: ["step09", "step10", "step11", "step12"])
        func triggerVariableIsIgnored(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Step09Tests.startContainer(box, name, Self.noNetwork(step)) != nil else { return }
                let steer = ["MYDOCKER_EXEC_PID": "1", "MYDOCKER_EXEC_TTY": "1"]
                // PID 1 of the host would give the host's hostname, and its namespaces.
                let exec = box.run(["exec", name, "hostname"], environment: steer)
                #expect(exec.exitCode == 0 && exec.stdout == name + "\n", "exec was steered\n\(exec)")
                let ps = box.run(["ps"], environment: steer)
                #expect(
                    ps.exitCode == 0 && ps.stdout.hasPrefix("ID ") && ps.stdout.contains(name),
                    "ps was steered\n\(ps)")
                let run = box.run(
                    ["run"] + Self.noNetwork(step) + ["busybox", "echo", "ran"], environment: steer)
                #expect(run.exitCode == 0 && run.stdout == "ran\n", "run was steered\n\(run)")
            }
        }

        @Test("a container's LD_PRELOAD reaches the exec'd command, never the host's dynamic loader")
        func containerEnvironmentStaysData() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let preload = "/nonexistent-mydocker.so"
                guard Step09Tests.startContainer(box, name, ["-e", "LD_PRELOAD=" + preload]) != nil else {
                    return
                }
                // glibc's ld.so says "object ... cannot be preloaded" if it ever sees the variable.
                let r = box.run(["exec", name, "sh", "-c", "echo $LD_PRELOAD"])
                #expect(r.exitCode == 0 && r.stdout == preload + "\n", "\(r)")
                #expect(r.stderr == "", "the host's loader saw the container's environment\n\(r)")
            }
        }

        @Test("step10: the exec'd command's environment is the container's plus -e, nothing of the runtime's")
        func environmentIsExactlyTheCommands() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Step09Tests.startContainer(box, name, ["-e", "A=1"]) != nil else { return }
                let r = box.run(["exec", "-e", "B=2", name, "cat", "/proc/self/environ"])
                let entries = r.stdout.split(separator: "\0").map(String.init)
                let expected = [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                    "HOSTNAME=\(name)", "A=1", "B=2",
                ]
                #expect(r.exitCode == 0 && entries == expected, "Expected \(expected)\n\(r)")
            }
        }

        @Test("step10: the command is looked up in the container's PATH, applied only at its execve")
        func commandUsesTheContainersPath() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let script =
                    "/bin/mkdir /own-bin && printf '#!/bin/sh\\necho from-own-bin\\n' > /own-bin/hello"
                    + " && /bin/chmod +x /own-bin/hello && exec /bin/sleep 1000"
                let started = Step09Tests.startContainer(
                    box, name, ["-e", "PATH=/own-bin:/bin"], command: ["/bin/sh", "-c", script],
                    running: "/bin/sleep")
                guard started != nil else { return }
                let r = box.run(["exec", name, "hello"])
                #expect(r.exitCode == 0 && r.stdout == "from-own-bin\n", "\(r)")
            }
        }

        @Test("step09: the exec'd command gets the caller's environment, exactly")
        func step09PassesTheCallersEnvironment() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Step09Tests.startContainer(box, name) != nil else { return }
                let extra = ["MYDOCKER_TEST_FROM_CALLER": "x y=z"]
                let r = box.run(["exec", name, "cat", "/proc/self/environ"], environment: extra)
                let entries = Set(r.stdout.split(separator: "\0").map(String.init))
                var caller = ProcessInfo.processInfo.environment.merging(extra) { $1 }
                caller["MYDOCKER_ROOT"] = box.root
                let expected = Set(caller.map { "\($0.key)=\($0.value)" })
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    entries == expected,
                    "missing \(expected.subtracting(entries).sorted()), extra \(entries.subtracting(expected).sorted())"
                )
            }
        }

        @Test(
            "the marker by hand, without the runtime's descriptors, is one line on stderr and exit 125",
            arguments: [
                // nothing open at 3 and 4
                (
                    "step09", "", "__nsenter notty hostname",
                    "read environment fd 4: Bad file descriptor (EBADF)"
                ),
                (
                    "step10", "", "__nsenter notty hostname",
                    "read environment fd 4: Bad file descriptor (EBADF)"
                ),
                (
                    "step11", "", "__nsenter notty hostname",
                    "read environment fd 4: Bad file descriptor (EBADF)"
                ),
                (
                    "step12", "", "__nsenter notty hostname",
                    "read environment fd 4: Bad file descriptor (EBADF)"
                ),
                // descriptors, but not the runtime's: a directory where the environment should be
                (
                    "step10", "exec 3</ 4</etc; ", "__nsenter notty hostname",
                    "read environment fd 4: Is a directory (EISDIR)"
                ),
                // no command after the marker
                (
                    "step10", "", "__nsenter tty",
                    "__nsenter: expected tty or notty, then a command: Invalid argument (EINVAL)"
                ),
            ])
        func markerByHand(step: String, setup: String, arguments: String, message: String) throws {
            let script = setup + "exec \"$0\" " + arguments
            let r = runProcess(["/bin/sh", "-c", script, Harness.binary(step)])
            #expect(r.exitCode == 125, "\(r)")
            #expect(r.stderrLines == [Substring("\(step): \(message)")], "\(r)")
            #expect(r.stdout == "", "\(r)")
        }

        @Test(
            "a PID reused between exec's check and its setns is never joined: exec fails instead",
            arguments: ["step09", "step10", "step11", "step12"])
        func reusedPIDIsNotJoined(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard let pid1 = Step09Tests.startContainer(box, name, Self.noNetwork(step)) else { return }
                let token = "ran-\(Harness.random(in: 10000...99999))"
                // Paused after the check, the cgroup and the descriptors, just before the re-exec.
                let exec = box.start(
                    ["exec", name, "sh", "-c", "echo \(token); hostname"],
                    environment: ["MYDOCKER_TEST_PAUSE_AT": "nsenter"])
                let paused =
                    waitUntil { Self.state(exec.pid) == "T" || exec.hasExited }
                    && !exec.hasExited
                #expect(paused, "exec never stopped at its nsenter mark\n\(exec.finish())")
                guard paused else { return }
                // The container dies and is collected (detached, its PID 1 is our orphan), then its
                // number goes to a process in the host's namespaces.
                kill(pid1, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(pid1, &status, 0)
                waitUntil { !FileManager.default.fileExists(atPath: "/proc/\(pid1)") }
                let reuser = spawn(["/bin/sleep", "60"], withPID: pid1)
                defer {
                    if let reuser {
                        kill(reuser.pid, SIGKILL)
                        _ = reuser.finish()
                    }
                }
                #expect(reuser != nil, "PID \(pid1) could not be handed out again")
                kill(exec.pid, SIGCONT)
                let r = exec.finish()
                #expect(!r.stdout.contains(token), "the command ran in another process's namespaces\n\(r)")
                #expect(r.exitCode == 125, "\(r)")
                // Step 12 reads PID 1's privileges before the first setns, through the same pidfd.
                let stage = step == "step12" ? "read the privileges of the container's PID 1" : "setns ipc"
                #expect(r.stderrLines == ["\(step): \(stage): No such process (ESRCH)"], "\(r)")
            }
        }

        @Test("steps 01-08 do not contain the exec constructor; 09 to 12 do")
        func constructorOnlyWhereTaught() throws {
            for number in 1...12 {
                let step = String(format: "step%02d", number)
                let binary = try Data(contentsOf: URL(fileURLWithPath: Harness.binary(step)))
                let hasMarker = binary.range(of: Data("__nsenter".utf8)) != nil
                let hasTrigger = binary.range(of: Data("MYDOCKER_EXEC_PID".utf8)) != nil
                #expect(hasMarker == (number >= 9), "\(step): marker \(hasMarker)")
                #expect(!hasTrigger, "\(step) still contains the MYDOCKER_EXEC_PID trigger")
            }
        }

        // MARK: helpers

        /// Field 3 of /proc/PID/stat: R, S, T (stopped), Z...
        static func state(_ pid: pid_t) -> Character? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            return stat[stat.index(after: close)...].split(separator: " ").first?.first
        }
    }
}
