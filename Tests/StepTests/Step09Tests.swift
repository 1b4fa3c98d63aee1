import CContainerSupport
import Foundation
import Testing

extension Steps {
    /// Step 09: `exec NAME CMD...` holds the container's PID 1 with a pidfd, joins its cgroup in
    /// Swift, then re-executes the binary as `step09 __nsenter notty CMD...` with the pidfd at fd 3
    /// and the command's environment in a memfd at fd 4; a C constructor, before the Swift runtime
    /// starts, setns(2)es through the pidfd into ipc, uts, net, pid and mnt, forks, and execs CMD
    /// in the child. Kernel facts checked: every namespace link of the exec'd process equals PID 1's;
    /// the exec'd process is PID N > 1 of the container's PID namespace (a PID namespace applies to
    /// children only, hence the fork); it is in the container's cgroup; nothing outlives it; none of
    /// the runtime's control data (marker, descriptors) reaches the command.
    @Suite("Step 09: exec into a running container", .timeLimit(.minutes(5)))
    struct Step09Tests {
        @Test(
            "the exec'd process sees the container's hostname, its PID 1 and a file the container made",
            .tags(.concept))
        func seesTheContainer() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let token = "made-\(Harness.random(in: 10000...99999))"
                let script = "echo \(token) > /made-by-pid1 && exec sleep 1000"
                guard Self.startContainer(box, name, command: ["sh", "-c", script], running: "sleep") != nil
                else { return }
                let hostname = box.run(["exec", name, "hostname"])
                #expect(
                    hostname.exitCode == 0 && hostname.stdout == name + "\n", "Expected \(name)\n\(hostname)")
                let file = box.run(["exec", name, "cat", "/made-by-pid1"])
                #expect(file.exitCode == 0 && file.stdout == token + "\n", "Expected \(token)\n\(file)")
                // The file is not on the host: exec read it through the container's mount namespace.
                #expect(
                    !FileManager.default.fileExists(atPath: "/made-by-pid1"), "/made-by-pid1 is on the host")
                let ps = box.run(["exec", name, "ps", "-o", "pid,args"])
                let rows = ps.stdout.split(separator: "\n").dropFirst().map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                #expect(ps.exitCode == 0, "\(ps)")
                #expect(
                    rows.first == "1 sleep 1000", "Expected the container's PID 1 (sleep 1000) first\n\(ps)")
                #expect(rows.count == 2 && rows.last?.hasSuffix(" ps -o pid,args") == true, "\(ps)")
            }
        }

        @Test(
            "every /proc/self/ns link (ipc, uts, net, pid, mnt) equals PID 1's and differs from the host's",
            .tags(.concept))
        func namespacesArePID1s() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard let pid1 = Self.startContainer(box, name) else { return }
                let kinds = ["ipc", "uts", "net", "pid", "mnt"]
                // $$ is the exec'd sh itself, not a child of it.
                let script = "for n in \(kinds.joined(separator: " ")); do readlink /proc/$$/ns/$n; done"
                let r = box.run(["exec", name, "sh", "-c", script])
                let links = r.stdout.split(separator: "\n").map(String.init)
                #expect(r.exitCode == 0 && links.count == kinds.count, "\(r)")
                guard links.count == kinds.count else { return }
                for (kind, link) in zip(kinds, links) {
                    // apple/containerization PR #851: an exec that joined mnt, pid and uts but not ipc.
                    #expect(
                        link == namespace(kind, of: "\(pid1)"),
                        "\(kind): PID 1 has \(namespace(kind, of: "\(pid1)"))\n\(r)")
                    #expect(link != namespace(kind), "\(kind) is still the host's\n\(r)")
                }
            }
        }

        @Test("the exec'd process is in the container's cgroup, mydocker/ID", .tags(.concept))
        func joinsTheCgroup() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard let pid1 = Self.startContainer(box, name) else { return }
                let r = box.run(["exec", name, "cat", "/proc/self/cgroup"])
                #expect(r.exitCode == 0, "\(r)")
                let pid1Cgroups = try String(contentsOfFile: "/proc/\(pid1)/cgroup", encoding: .utf8)
                #expect(r.stdout == pid1Cgroups, "Expected PID 1's cgroups:\n\(pid1Cgroups)\n\(r)")
                let lines = r.stdout.split(separator: "\n")
                // Cgroups are named by the container's ID (the record's `id`), never by its name.
                let id = Self.recordField(box, name, "id") ?? "?"
                let path = ":/mydocker/\(id)"
                if Self.cgroupV2 {
                    #expect(lines.contains("0::/mydocker/\(id)"), "\(r)")
                } else {
                    // v1: one line per hierarchy, `ID:CONTROLLERS:PATH`; cpu may share one with cpuacct.
                    for controller in ["memory", "cpu", "cpuset"] {
                        let line = lines.first { line in
                            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
                            return fields.count == 3
                                && fields[1].split(separator: ",").contains(Substring(controller))
                        }
                        #expect(line?.hasSuffix(path) == true, "\(controller) is not \(path)\n\(r)")
                    }
                }
            }
        }

        @Test(
            "arguments with spaces, quotes, empty strings and shell characters reach the command unchanged",
            .tags(.concept))
        func argumentsSurvive() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Self.startContainer(box, name) != nil else { return }
                // No shell runs between exec and printf: $HOME, * and ; stay text, and -e and
                // --name after the container are the command's, not exec's flags.
                let words = ["a b", "  two  ", "it's", "\"q\"", "", "$HOME", "*", ";", "-e", "--name", ""]
                let r = box.run(["exec", name, "printf", "[%s]"] + words)
                let expected = words.map { "[\($0)]" }.joined()
                #expect(r.exitCode == 0, "\(r)")
                #expect(r.stdout == expected, "Expected \(expected.debugDescription) as stdout\n\(r)")
            }
        }

        @Test(
            "exit codes pass through: exit N gives N, a signal 128+N, not found 127, not executable 126",
            .tags(.concept))
        func exitCodes() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Self.startContainer(box, name) != nil else { return }
                let code = Int32(Harness.random(in: 1...120))
                let r = box.run(["exec", name, "sh", "-c", "exit \(code)"])
                #expect(r.exitCode == code, "\(r)")
                let killed = box.run(["exec", name, "sh", "-c", "kill -9 $$"])
                #expect(killed.exitCode == 137, "\(killed)")
                let missing = box.run(["exec", name, "no-such-command-xyz"])
                #expect(missing.exitCode == 127, "\(missing)")
                expectOneLineError(
                    missing, reference: "step09: exec no-such-command-xyz: No such file or directory (ENOENT)"
                )
                // /etc/passwd exists in the busybox image but has no x bit.
                let notExecutable = box.run(["exec", name, "/etc/passwd"])
                #expect(notExecutable.exitCode == 126, "\(notExecutable)")
                expectOneLineError(
                    notExecutable, reference: "step09: exec /etc/passwd: Permission denied (EACCES)")
            }
        }

        @Test("stdin is /dev/null unless -i is given", .tags(.concept))
        func stdinOnlyWithDashI() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Self.startContainer(box, name) != nil else { return }
                let line = "typed-\(Harness.random(in: 1000...9999))\n"
                let without = box.run(["exec", name, "cat"], stdin: line)
                #expect(without.exitCode == 0 && without.stdout == "", "\(without)")
                let with = box.run(["exec", "-i", name, "cat"], stdin: line)
                #expect(with.exitCode == 0 && with.stdout == line, "\(with)")
            }
        }

        @Test(
            "exec -ti sh works in a real terminal: prompt, hostname, a PID > 1, Ctrl-C, exit 4",
            .tags(.concept))
        func interactiveShell() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard let pid1 = Self.startContainer(box, name) else { return }
                let term = try Terminal(box, ["exec", "-ti", name, "sh"])
                defer { term.close() }
                #expect(term.waitForPrompt(), "no prompt:\n\(term.screen)")
                term.type("hostname")
                #expect(Self.waitForLine(term, name), "\(term.screen)")
                term.type("echo pid=$$")
                var shellPID: Int?
                waitUntil {
                    shellPID =
                        term.screen.split(separator: "\n").compactMap { line in
                            line.hasPrefix("pid=") ? Int(line.dropFirst(4)) : nil
                        }.first
                    return shellPID != nil
                }
                // Not 1 (that is the container's sleep) and not a host PID: a few forks into a fresh
                // namespace, the shell has a small number.
                #expect(
                    shellPID.map { $0 > 1 && $0 < 100 } == true,
                    "pid=\(String(describing: shellPID))\n\(term.screen)")
                term.type("sleep 30")
                let sleeping = waitUntil {
                    Self.processes(inPIDNamespaceOf: pid1).contains { Self.commandLine($0) == "sleep 30" }
                }
                #expect(sleeping, "sleep 30 never started in the container:\n\(term.screen)")
                term.press("C-c")
                term.type("echo after-ctrl-c")
                #expect(
                    Self.waitForLine(term, "after-ctrl-c"),
                    "Ctrl-C did not return to the shell:\n\(term.screen)")
                term.type("exit 4")
                #expect(term.waitForExit() == 4, "\(term.screen)")
            }
        }

        @Test(
            "no process is left in the container after exec returns, not even the forking parent",
            .tags(.concept))
        func nothingOutlivesExec() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard let pid1 = Self.startContainer(box, name) else { return }
                let cgroupProcs = Self.cgroupProcsFile(box, name)
                let running = box.start(["exec", name, "sleep", "30"])
                // While it runs: the sleep is in the PID namespace, and the cgroup holds PID 1, the
                // sleep and exec's waiting parent (outside the PID namespace, inside the cgroup).
                var inside: [pid_t] = []
                // An exec that exits at once (one that failed) ends the wait: nothing will show up.
                let seen =
                    waitUntil {
                        inside = Self.processes(inPIDNamespaceOf: pid1).filter { $0 != pid1 }
                        return (inside.count == 1 && Self.pids(in: cgroupProcs).count == 3)
                            || running.hasExited
                    } && !running.hasExited
                #expect(
                    seen,
                    "exec's processes never showed up: ns \(inside), \(cgroupProcs): \(Self.pids(in: cgroupProcs))"
                )
                // Killing the sleep ends the exec; killing exec itself (if the sleep never showed)
                // only keeps a broken runtime from holding the test for 30 seconds.
                if let sleep = inside.first, seen {
                    kill(sleep, SIGKILL)
                } else if !running.hasExited {
                    kill(running.pid, SIGKILL)
                }
                let r = running.finish()
                #expect(r.exitCode == 137, "\(r)")
                #expect(Self.processes(inPIDNamespaceOf: pid1) == [pid1], "left in the PID namespace")
                #expect(Self.pids(in: cgroupProcs) == [pid1], "left in \(cgroupProcs)")
                let ps = box.run(["exec", name, "ps", "-o", "pid,args"])
                let rows = ps.stdout.split(separator: "\n").dropFirst().map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                #expect(rows.count == 2 && rows.first == "1 sleep 1000", "Expected PID 1 and ps only\n\(ps)")
            }
        }

        @Test(
            "the runtime's control data reaches the command neither in argv, nor as descriptors, nor in env")
        func controlDataIsNotInherited() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Self.startContainer(box, name) != nil else { return }
                // argv is the user's command alone: the marker and tty|notty stay with the constructor.
                let argv = box.run(["exec", name, "cat", "/proc/self/cmdline"])
                #expect(argv.exitCode == 0 && argv.stdout == "cat\0/proc/self/cmdline\0", "\(argv)")
                // The pidfd (3) and the environment's memfd (4) are closed: ls's own directory is 3.
                let fds = box.run(["exec", name, "ls", "/proc/self/fd/"])
                #expect(fds.exitCode == 0 && fds.stdout == "0\n1\n2\n3\n", "\(fds)")
                let r = box.run(["exec", name, "env"])
                let names = r.stdout.split(separator: "\n").map { $0.prefix { $0 != "=" } }
                #expect(r.exitCode == 0 && names.contains("PATH"), "\(r)")
                #expect(
                    !names.contains { $0.hasPrefix("MYDOCKER_EXEC") }, "the command inherited a trigger\n\(r)"
                )
                #expect(!r.stdout.contains("__nsenter"), "\(r)")
            }
        }

        @Test(
            "bad input is one line on stderr and exit 125",
            arguments: [
                // a name nobody ran
                (["exec", "t-nosuchone", "sh"], "step09: no such container: t-nosuchone"),
                // a container that exists but whose PID 1 has exited (stopped first)
                (["exec", "STOPPED", "sh"], "step09: container 'STOPPED' is not running"),
                // a container and no command
                (
                    ["exec", "t-nosuchone"],
                    "step09: exec needs a container and a command (try: step09 exec web sh)"
                ),
                // nothing at all
                (["exec"], "step09: exec needs a container and a command (try: step09 exec web sh)"),
                // a flag exec does not know
                (["exec", "-d", "t-nosuchone", "sh"], "step09: unknown flag '-d' (see step09 exec --help)"),
                // -t with stdin that is not a terminal
                (
                    ["exec", "-t", "t-nosuchone", "sh"],
                    "step09: -t needs a terminal on stdin, and stdin is not one"
                ),
            ])
        func badInput(arguments: [String], message: String) throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                if arguments.contains("STOPPED") {
                    guard Self.startContainer(box, name) != nil else { return }
                    let stop = box.run(["stop", "-t", "0", name])
                    #expect(stop.exitCode == 0, "\(stop)")
                }
                let r = box.run(arguments.map { $0 == "STOPPED" ? name : $0 })
                let expected = message.replacingOccurrences(of: "STOPPED", with: name)
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: expected)
            }
        }

        @Test("step08 has no exec: the previous step lacks the command")
        func step08LacksExec() throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                guard Self.startContainer(box, name) != nil else { return }
                let old = box.run(step: "step08", ["exec", name, "hostname"])
                #expect(old.exitCode == 125, "\(old)")
                #expect(old.stderrLines == ["step08: unknown command 'exec' (try: step08 --help)"], "\(old)")
                let now = box.run(["exec", name, "hostname"])
                #expect(now.exitCode == 0 && now.stdout == name + "\n", "\(now)")
            }
        }

        @Test(
            "earlier guarantees still hold",
            arguments: [
                // step 02: the command is PID 1 of its own PID namespace
                (["run", "busybox", "sh", "-c", "echo $$"], Int32(0), "1\n"),
                // step 02: exit codes pass through
                (["run", "busybox", "sh", "-c", "exit 7"], Int32(7), ""),
                // step 04: the command travels whole, spaces and all
                (["run", "busybox", "sh", "-c", "echo \"a  b\""], Int32(0), "a  b\n"),
                // step 05: the root is the busybox image, the host's files are out of reach
                (["run", "busybox", "sh", "-c", "test -e REPO || echo isolated"], Int32(0), "isolated\n"),
                // step 08: a named container's hostname is its name
                (["run", "--name", "NAME", "busybox", "hostname"], Int32(0), "NAME\n"),
            ])
        func earlierGuarantees(arguments: [String], code: Int32, stdout: String) throws {
            try withSandbox("step09", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let repo = Harness.packageRoot.path
                let fill = { (text: String) in
                    text.replacingOccurrences(of: "NAME", with: name).replacingOccurrences(
                        of: "REPO", with: repo)
                }
                let r = box.run(arguments.map(fill))
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == fill(stdout), "Expected \(fill(stdout).debugDescription) as stdout\n\(r)")
            }
        }

        // MARK: helpers

        static let cgroupV2: Bool = {
            var magic: UInt = 0
            return cs_filesystem_magic("/sys/fs/cgroup", &magic) == 0 && magic == UInt(CGROUP2_SUPER_MAGIC)
        }()

        /// `run -d --name NAME busybox COMMAND`, then waits until the container's PID 1 runs
        /// `running` (its first word after any exec). Returns PID 1 as the host numbers it.
        static func startContainer(
            _ box: Sandbox, _ name: String, _ flags: [String] = [], command: [String] = ["sleep", "1000"],
            running: String = "sleep"
        ) -> pid_t? {
            let r = box.run(["run", "-d", "--name", name] + flags + ["busybox"] + command)
            #expect(r.exitCode == 0, "\(r)")
            guard r.exitCode == 0, let pid = recordPID(box, name) else { return nil }
            let started = waitUntil { commandLine(pid).hasPrefix(running + " ") }
            #expect(started, "PID 1 (\(pid)) never ran \(running): \(commandLine(pid))")
            return started ? pid : nil
        }

        /// A string field of containers/NAME/config.json.
        static func recordField(_ box: Sandbox, _ name: String, _ field: String) -> String? {
            let path = box.root + "/containers/\(name)/config.json"
            guard let data = FileManager.default.contents(atPath: path),
                let record = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return nil }
            return record[field] as? String
        }

        /// The `pid` field of containers/NAME/config.json.
        static func recordPID(_ box: Sandbox, _ name: String) -> pid_t? {
            let path = box.root + "/containers/\(name)/config.json"
            guard let data = FileManager.default.contents(atPath: path),
                let record = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let pid = record["pid"] as? Int
            else {
                Issue.record("no readable record at \(path)")
                return nil
            }
            return pid_t(pid)
        }

        /// /proc/PID/cmdline with spaces for NULs, as ps shows it.
        static func commandLine(_ pid: pid_t) -> String {
            let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
            return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
                .trimmingCharacters(in: .whitespaces)
        }

        /// Every live process whose PID namespace is `pid`'s, by host PID.
        static func processes(inPIDNamespaceOf pid: pid_t) -> [pid_t] {
            let target = namespace("pid", of: "\(pid)")
            guard target != "?" else { return [] }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap(pid_t.init).filter { namespace("pid", of: "\($0)") == target }.sorted()
        }

        /// The container's cgroup.procs: the memory hierarchy's on v1, the unified tree's on v2. The
        /// cgroup is named by the container's ID.
        static func cgroupProcsFile(_ box: Sandbox, _ name: String) -> String {
            let id = recordField(box, name, "id") ?? "?"
            return cgroupV2
                ? "/sys/fs/cgroup/mydocker/\(id)/cgroup.procs"
                : "/sys/fs/cgroup/memory/mydocker/\(id)/cgroup.procs"
        }

        static func pids(in file: String) -> [pid_t] {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { pid_t($0) }.sorted()
        }

        /// Waits for `text` as a whole line of output (not inside the echoed command line).
        static func waitForLine(_ term: Terminal, _ text: String) -> Bool {
            waitUntil(timeout: 15) { term.screen.split(separator: "\n").contains { $0 == text } }
        }
    }
}
