import Foundation
import Testing

extension Steps {
    /// Step 10: `run` execs init (and so the command) with a clean environment: PATH, HOME=/root,
    /// HOSTNAME=NAME, TERM=xterm with -t, then every `-e KEY=VALUE` (`-e KEY` copies the host's
    /// value); `exec` gives its command the container's PID 1 environment, read from
    /// /proc/PID/environ, plus its own `-e`. Kernel facts checked: the environment is execve(2)'s
    /// third argument and nothing else (no host variable gets in); /proc/PID/environ is the block
    /// PID 1 was started with, byte for byte, and does not follow later changes.
    /// Container helpers (startContainer, recordPID, commandLine) are Step09Tests'.
    @Suite("Step 10: environment variables", .timeLimit(.minutes(5)))
    struct Step10Tests {
        static let defaultPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

        @Test(
            "run -e A=.. -e B=..: the container's PID 1 and an exec'd process both have A and B",
            .tags(.concept))
        func containerAndExecHaveTheVariables() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let a = "A=\(Harness.random(in: 1000...9999))"
                let b = "B=\(Harness.random(in: 1000...9999))"
                guard let pid1 = Step09Tests.startContainer(box, name, ["-e", a, "-e", b]) else { return }
                // PID 1's own environment, as the kernel keeps it.
                let environ = Self.environ(of: pid1)
                #expect(environ.contains(a) && environ.contains(b), "/proc/\(pid1)/environ: \(environ)")
                let exec = box.run(["exec", name, "env"])
                let lines = exec.stdout.split(separator: "\n").map(String.init)
                #expect(exec.exitCode == 0 && lines.contains(a) && lines.contains(b), "\(exec)")
                // A foreground container prints its own.
                let run = box.run(["run", "-e", a, "-e", b, "busybox", "env"])
                let runLines = run.stdout.split(separator: "\n").map(String.init)
                #expect(run.exitCode == 0 && runLines.contains(a) && runLines.contains(b), "\(run)")
            }
        }

        @Test(
            "values keep spaces and '='; -e KEY copies the host's value and is skipped when the host has none",
            .tags(.concept)
        )
        func valuesAndHostCopies() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let hostValue = "from host \(Harness.random(in: 1000...9999))"
                let unset = "STEP10_TEST_UNSET_\(Harness.random(in: 1000...9999))"
                let r = box.run(
                    [
                        "run", "-e", "X=a = b  c", "-e", "EMPTY=", "-e", "STEP10_TEST_FROM_HOST", "-e",
                        unset,
                        "busybox", "env",
                    ],
                    environment: ["STEP10_TEST_FROM_HOST": hostValue])
                let lines = r.stdout.split(separator: "\n").map(String.init)
                #expect(r.exitCode == 0, "\(r)")
                // Only the first '=' separates the name; the rest, spaces and all, is the value.
                #expect(lines.contains("X=a = b  c"), "\(r)")
                #expect(lines.contains("EMPTY="), "\(r)")
                #expect(lines.contains("STEP10_TEST_FROM_HOST=\(hostValue)"), "\(r)")
                #expect(!lines.contains { $0.hasPrefix(unset) }, "\(unset) is not set on the host\n\(r)")
            }
        }

        @Test(
            "the default environment is exactly PATH, HOME=/root and HOSTNAME=NAME, and PATH finds applets",
            .tags(.concept))
        func defaultEnvironment() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                // TERM is set on the host side, but the container has no terminal (no -t).
                let r = box.run(
                    ["run", "--name", name, "busybox", "env"], environment: ["TERM": "xterm-from-host"])
                let lines = r.stdout.split(separator: "\n").map(String.init).sorted()
                let expected = ["HOME=/root", "HOSTNAME=\(name)", Self.defaultPATH]
                #expect(r.exitCode == 0 && lines == expected, "Expected \(expected)\n\(r)")
                // `which` searches PATH (the shell's `command -v ls` would name its built-in applet
                // whatever PATH is).
                let which = box.run(["run", "busybox", "which", "ls"])
                #expect(which.exitCode == 0 && which.stdout == "/bin/ls\n", "\(which)")
            }
        }

        @Test("with -t the container also gets TERM=xterm", .tags(.concept))
        func termOnlyWithTTY() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let term = try Terminal(box, ["run", "-ti", "busybox", "env"])
                defer { term.close() }
                #expect(term.waitForExit() == 0, "\(term.screen)")
                let lines = term.screen.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                #expect(lines.contains("TERM=xterm"), "\(term.screen)")
                #expect(lines.contains(Self.defaultPATH), "\(term.screen)")
            }
        }

        @Test(
            "the host's variables reach neither the container nor an exec; under step09 they reach both",
            .tags(.concept))
        func hostVariablesDoNotLeak() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let marker = "MYDOCKER_TEST_MARKER"
                let value = "m\(Harness.random(in: 100_000...999_999))"
                let hostEnvironment = [marker: value]
                let run = box.run(["run", "busybox", "env"], environment: hostEnvironment)
                #expect(run.exitCode == 0 && !run.stdout.contains(value), "\(marker) leaked into run\n\(run)")
                // MYDOCKER_ROOT is set for every runtime call: it must not get in either.
                #expect(!run.stdout.contains("MYDOCKER_ROOT"), "\(run)")
                let name = box.newName()
                guard Step09Tests.startContainer(box, name) != nil else { return }
                let exec = box.run(["exec", name, "env"], environment: hostEnvironment)
                #expect(
                    exec.exitCode == 0 && !exec.stdout.contains(value), "\(marker) leaked into exec\n\(exec)")
                // The previous step passes its whole environment on, to run and to exec alike.
                let oldEnvironment = ["MYDOCKER_ROOT": box.root, marker: value]
                let oldRun = runProcess(
                    [Harness.binary("step09"), "run", "busybox", "env"], environment: oldEnvironment)
                #expect(oldRun.stdout.contains("\(marker)=\(value)\n"), "step09 run did not leak\n\(oldRun)")
                // step09 refuses the records of a later step: it execs into a container of its own.
                let oldName = box.newName()
                let oldStart = box.run(
                    step: "step09", ["run", "-d", "--name", oldName, "busybox", "sleep", "1000"])
                let oldPID = Step09Tests.recordPID(box, oldName) ?? 0
                let oldRunning = waitUntil {
                    ((try? String(contentsOfFile: "/proc/\(oldPID)/cmdline", encoding: .utf8)) ?? "")
                        .hasPrefix("sleep")
                }
                #expect(oldStart.exitCode == 0 && oldRunning, "step09's container never ran\n\(oldStart)")
                let oldExec = runProcess(
                    [Harness.binary("step09"), "exec", oldName, "env"], environment: oldEnvironment)
                #expect(
                    oldExec.stdout.contains("\(marker)=\(value)\n"), "step09 exec did not leak\n\(oldExec)")
            }
        }

        @Test(
            "exec -e adds variables, and a later -e wins over an earlier one and over the container's",
            .tags(.concept))
        func execDashE() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard
                    let pid1 = Step09Tests.startContainer(box, name, ["-e", "A=1", "-e", "A=2", "-e", "B=b"])
                else { return }
                // run: the later -e A=2 replaced A=1, one entry per name.
                let environ = Self.environ(of: pid1)
                #expect(environ.filter { $0.hasPrefix("A=") } == ["A=2"], "/proc/\(pid1)/environ: \(environ)")
                let r = box.run(
                    [
                        "exec", "-e", "C=3", "-e", "B=x", "-e", "B=y", "-e", "STEP10_TEST_FROM_HOST", name,
                        "env",
                    ],
                    environment: ["STEP10_TEST_FROM_HOST": "copied"])
                let lines = r.stdout.split(separator: "\n").map(String.init)
                #expect(r.exitCode == 0, "\(r)")
                #expect(lines.filter { $0.hasPrefix("A=") } == ["A=2"], "the container's A\n\(r)")
                #expect(lines.filter { $0.hasPrefix("B=") } == ["B=y"], "the last -e B wins\n\(r)")
                #expect(lines.contains("C=3") && lines.contains("STEP10_TEST_FROM_HOST=copied"), "\(r)")
                // exec's -e is for that one process: the container itself is unchanged.
                #expect(Self.environ(of: pid1) == environ, "PID 1's environment changed")
            }
        }

        @Test(
            "exec sees PID 1's environment as it was at execve: a variable PID 1 exports later is not there",
            .tags(.concept))
        func environIsFixedAtExecve() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                // PID 1 stays this sh; it exports LATE after its execve and passes it to its child only.
                let script = "export LATE=late; sleep 1000 & wait"
                guard
                    let pid1 = Step09Tests.startContainer(
                        box, name, command: ["sh", "-c", script], running: "sh")
                else { return }
                var child: pid_t = 0
                let started = waitUntil {
                    child = childPIDs(of: pid1).first ?? 0
                    return child > 0 && Step09Tests.commandLine(child) == "sleep 1000"
                }
                #expect(started, "PID 1's sleep never started")
                // The child got LATE through its own execve; PID 1's block never changed.
                #expect(
                    Self.environ(of: child).contains("LATE=late"), "the child: \(Self.environ(of: child))")
                #expect(!Self.environ(of: pid1).contains("LATE=late"), "PID 1: \(Self.environ(of: pid1))")
                let r = box.run(["exec", name, "env"])
                #expect(r.exitCode == 0 && r.stdout.contains("HOSTNAME=\(name)\n"), "\(r)")
                #expect(
                    !r.stdout.contains("LATE="), "exec saw a variable PID 1's environ does not have\n\(r)")
            }
        }

        @Test(
            "bad -e is one line on stderr, exit 125, and nothing is created",
            arguments: [
                // docker's one rule: a variable needs a name
                (
                    ["run", "--name", "NAME", "-e", "=x", "busybox", "true"],
                    "step10: invalid environment variable '=x': the name is empty"
                ),
                // -e as the last word, with no value after it
                (["run", "--name", "NAME", "-e"], "step10: flag -e needs a value (KEY=VALUE)"),
                // an empty -e
                (
                    ["run", "--name", "NAME", "-e", "", "busybox", "true"],
                    "step10: invalid environment variable '': the name is empty"
                ),
                // a space in the name (env(1) and sh could not address it)
                (
                    ["run", "--name", "NAME", "-e", "A B=1", "busybox", "true"],
                    "step10: invalid environment variable 'A B=1': the name contains a space"
                ),
                // the same rule for exec, on a running container
                (
                    ["exec", "-e", "=x", "RUNNING", "env"],
                    "step10: invalid environment variable '=x': the name is empty"
                ),
                // exec's -e with no value
                (["exec", "-e"], "step10: flag -e needs a value (KEY=VALUE)"),
            ])
        func badEnvironment(arguments: [String], message: String) throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                if arguments.contains("RUNNING") {
                    guard Step09Tests.startContainer(box, name) != nil else { return }
                }
                let r = box.run(arguments.map { $0 == "NAME" || $0 == "RUNNING" ? name : $0 })
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: message)
                if arguments.first == "run" {
                    let fm = FileManager.default
                    #expect(
                        !fm.fileExists(atPath: box.root + "/containers/\(name)"),
                        "a record directory was made")
                    #expect(!fm.fileExists(atPath: box.root + "/overlay/\(name)"), "a layer was made")
                }
            }
        }

        @Test(
            "earlier guarantees still hold",
            arguments: [
                // step 09: exec runs inside the container (its hostname is its name)
                (["exec", "RUNNING", "hostname"], Int32(0), "NAME\n"),
                // step 09: exec passes the exit code through
                (["exec", "RUNNING", "sh", "-c", "exit 9"], Int32(9), ""),
                // step 09: exec's arguments arrive unsplit
                (["exec", "RUNNING", "printf", "[%s]", "a  b", ""], Int32(0), "[a  b][]"),
                // step 02: the command is PID 1
                (["run", "busybox", "sh", "-c", "echo $$"], Int32(0), "1\n"),
                // step 02: exit codes pass through
                (["run", "busybox", "sh", "-c", "exit 7"], Int32(7), ""),
                // step 08: a named container's hostname is its name
                (["run", "--name", "NAME", "busybox", "hostname"], Int32(0), "NAME\n"),
            ])
        func earlierGuarantees(arguments: [String], code: Int32, stdout: String) throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                if arguments.contains("RUNNING") {
                    guard Step09Tests.startContainer(box, name) != nil else { return }
                }
                let r = box.run(arguments.map { $0 == "NAME" || $0 == "RUNNING" ? name : $0 })
                let expected = stdout.replacingOccurrences(of: "NAME", with: name)
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == expected, "Expected \(expected.debugDescription) as stdout\n\(r)")
            }
        }

        /// /proc/PID/environ: the NUL-separated block the process's execve(2) received.
        static func environ(of pid: pid_t) -> [String] {
            let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") ?? Data()
            return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }
    }
}
