import Foundation
import Testing

extension Steps {
    /// Step 02: `run` clones a child into new UTS, PID, mount, network and IPC namespaces and
    /// re-executes itself as `init`, which makes `/` private, mounts /proc and execs the command.
    /// Kernel facts checked: the command is PID 1; /proc shows only the container; the host's /proc
    /// and mounts are untouched; exit codes and signal deaths pass through.
    @Suite("Step 02: run and init in new namespaces", .timeLimit(.minutes(5)))
    struct Step02Tests {
        @Test("the command is PID 1 of its own PID namespace; step01 is not", .tags(.concept))
        func commandIsPID1() throws {
            try withSandbox("step02") { box in
                let r = box.run(["run", "sh", "-c", "echo $$"])
                #expect(r.exitCode == 0 && r.stdout == "1\n", "Expected \"1\\n\" as stdout\n\(r)")
                // The previous step keeps the host's PID namespace: the same shell gets a host PID.
                let old = box.run(step: "step01", ["sh", "-c", "echo $$"])
                #expect(old.stdout != "1\n", "step01 unexpectedly ran the command as PID 1\n\(old)")
            }
        }

        @Test("ps inside lists only the container's processes", .tags(.concept))
        func psShowsOnlyTheContainer() throws {
            try withSandbox("step02") { box in
                let r = box.run(["run", "busybox", "ps", "-o", "pid,args"])
                let rows = r.stdout.split(separator: "\n").dropFirst().map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                #expect(r.exitCode == 0, "\(r)")
                #expect(rows == ["1 busybox ps -o pid,args"], "Expected only PID 1 (ps itself)\n\(r)")
            }
        }

        @Test("every namespace the step promises is new: uts, pid, mnt, net, ipc", .tags(.concept))
        func namespacesAreNew() throws {
            try withSandbox("step02") { box in
                let kinds = ["uts", "pid", "mnt", "net", "ipc"]
                let r = box.run([
                    "run", "sh", "-c",
                    "for n in \(kinds.joined(separator: " ")); do readlink /proc/self/ns/$n; done",
                ])
                let links = r.stdout.split(separator: "\n").map(String.init)
                #expect(links.count == kinds.count, "\(r)")
                for (kind, link) in zip(kinds, links) {
                    #expect(link != namespace(kind), "\(kind) namespace is the host's\n\(r)")
                }
            }
        }

        @Test(
            "the host's /proc is still mounted and usable afterwards, and no mount changed", .tags(.concept))
        func hostProcSurvives() throws {
            try withSandbox("step02") { box in
                let mountsBefore = MachineState.readMountPoints()
                let r = box.run(["run", "sh", "-c", "grep -c ' /proc ' /proc/self/mountinfo"])
                #expect(r.exitCode == 0, "\(r)")
                #expect(MachineState.readMountPoints() == mountsBefore, "the host's mount table changed")
                let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
                #expect(stat.hasPrefix("\(getpid()) "), "the host's /proc/self is not this process anymore")
            }
        }

        @Test("exit codes pass through: exit N gives N, not found 127, not executable 126", .tags(.concept))
        func exitCodes() throws {
            try withSandbox("step02") { box in
                let code = Int32(Harness.random(in: 1...120))
                let r = box.run(["run", "sh", "-c", "exit \(code)"])
                #expect(r.exitCode == code, "\(r)")
                let missing = box.run(["run", "no-such-command-xyz"])
                #expect(missing.exitCode == 127, "\(missing)")
                expectOneLineError(
                    missing, reference: "step02: exec no-such-command-xyz: No such file or directory (ENOENT)"
                )
                let notExecutable = box.run(["run", "/etc/passwd"])
                #expect(notExecutable.exitCode == 126, "\(notExecutable)")
            }
        }

        @Test("a container killed by signal N exits 128+N", .tags(.concept))
        func signalDeath() throws {
            try withSandbox("step02") { box in
                let running = box.start(["run", "sleep", "30"])
                var pid1: pid_t = 0
                let found = waitUntil { () -> Bool in
                    pid1 = childPIDs(of: running.pid).first ?? 0
                    return pid1 > 0
                        && (try? String(contentsOfFile: "/proc/\(pid1)/cmdline", encoding: .utf8))?
                            .hasPrefix("sleep") == true
                }
                // Not found: pid1 may be 0, and kill(0, ...) would kill the test's own process group.
                guard found else {
                    Issue.record("the container's sleep never started\n\(running.finish(timeout: 1))")
                    return
                }
                // SIGKILL from the parent namespace is the one signal PID 1 cannot ignore.
                kill(pid1, SIGKILL)
                let r = running.finish()
                #expect(r.exitCode == 137, "\(r)")
            }
        }

        @Test(
            "SIGTERM sent to the runtime is forwarded to the container, which can handle it", .tags(.concept))
        func sigtermIsForwarded() throws {
            try withSandbox("step02") { box in
                let script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
                let running = box.start(["run", "sh", "-c", script])
                #expect(waitUntil { running.stdoutSoFar.contains("ready") }, "the container never started")
                kill(running.pid, SIGTERM)
                let r = running.finish()
                #expect(r.exitCode == 42 && r.stdout.contains("got-term"), "\(r)")
            }
        }

        @Test(
            "-ti sh works in a real terminal: prompt, hostname, Ctrl-C reaches the shell, exit 3",
            .tags(.concept))
        func interactiveShell() throws {
            try withSandbox("step02") { box in
                let term = try Terminal(box, ["run", "-ti", "sh"])
                defer { term.close() }
                #expect(term.waitForPrompt(), "no prompt:\n\(term.screen)")
                term.type("echo pid=$$")
                #expect(term.waitFor("pid=1"), "\(term.screen)")
                term.type("hostname")
                #expect(term.waitFor(hostHostname()), "\(term.screen)")
                term.type("sleep 30")
                term.press("C-c")
                term.type("echo after-ctrl-c")
                #expect(term.waitFor("after-ctrl-c\n"), "Ctrl-C did not return to the shell:\n\(term.screen)")
                term.type("exit 3")
                #expect(term.waitForExit() == 3, "\(term.screen)")
            }
        }

        @Test(
            "bad input is one line on stderr and exit 125", .tags(.concept),
            arguments: [
                // no subcommand at all
                ([String](), "step02: no command given (try: step02 run -ti sh)"),
                // a subcommand that does not exist
                (["start", "sh"], "step02: unknown command 'start' (try: step02 --help)"),
                // a flag run does not know
                (["run", "--memory", "1m", "sh"], "step02: unknown flag '--memory' (see step02 run --help)"),
                // run without a command
                (["run", "-i"], "step02: run needs a command (try: step02 run -ti sh)"),
                // -t with stdin that is not a terminal
                (["run", "-t", "true"], "step02: -t needs a terminal on stdin, and stdin is not one"),
                // init typed by hand, outside a container
                (
                    ["init", "--", "true"],
                    "step02: init runs inside a container only (it is started by 'step02 run')"
                ),
            ])
        func badInput(arguments: [String], message: String) throws {
            try withSandbox("step02") { box in
                let r = box.run(arguments)
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: message)
            }
        }
    }
}
