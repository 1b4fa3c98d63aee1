import Foundation
import Testing

extension Steps {
    /// Safe on a shared machine: what the runtime's caller holds (descriptors, the runtime's own
    /// environment variables, signals meant for a container that is gone) never reaches a container
    /// or another process, and the state tree is closed to other local users.
    @Suite("Reliability: nothing of the host crosses over", .timeLimit(.minutes(10)))
    struct HostSafetyTests {
        /// `run` for this step: which arguments come before the command.
        static func runArguments(_ step: String, _ box: Sandbox) -> [String] {
            switch step {
            case "step02", "step03", "step04", "step05", "step06": return ["run"]
            case "step07": return ["run", "busybox"]
            // The empty network namespace of step 10: no bridge or veth on the host's network.
            case "step11": return ["run", "--net", "none", "--name", box.newName(), "busybox"]
            default: return ["run", "--name", box.newName(), "busybox"]
            }
        }

        static func needsImage(_ step: String) -> Bool { step >= "step05" }

        @Test(
            "nothing but 0, 1 and 2 reaches the container's command, whatever the caller left open",
            arguments: [
                "step02", "step03", "step04", "step05", "step06", "step07", "step08", "step09", "step10",
                "step11", "step12",
            ])
        func inheritedDescriptorsStayOutside(step: String) throws {
            try withSandbox(step, image: Self.needsImage(step)) { box in
                // The harness starts every program with the canary descriptor open on the host's
                // `/` (a careless caller's `19</`). `; true` keeps sh itself as PID 1.
                let canary = Harness.canaryDescriptor
                let r = box.run(
                    Self.runArguments(step, box) + [
                        "sh", "-c",
                        "ls /proc/1/fd; ls /proc/1/fd/\(canary)/ >/dev/null 2>&1 && echo LEAK; true",
                    ])
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    r.stdout.split(separator: "\n") == ["0", "1", "2"],
                    "Expected only 0 1 2 in the container's PID 1, got: \(r.stdout.debugDescription)\n\(r)")
            }
        }

        @Test(
            "a signal that reaches the runtime after its container exited is not forwarded to the container's old PID",
            arguments: ["step02", "step05", "step10"])
        func noSignalForADeadContainer(step: String) throws {
            try withSandbox(step, image: Self.needsImage(step)) { box in
                // The runtime stops itself at its `exited` mark, after it has collected the container.
                let runtime = box.start(
                    Self.runArguments(step, box) + ["sleep", "1"],
                    environment: ["MYDOCKER_TEST_PAUSE_AT": "exited"])
                // However the test ends, the runtime goes on to its own cleanup.
                defer {
                    kill(runtime.pid, SIGCONT)
                    _ = runtime.finish()
                }
                var oldPID: pid_t = 0
                #expect(
                    waitUntil {
                        oldPID = childPIDs(of: runtime.pid).first { commandName(of: $0) == "sleep" } ?? 0
                        return oldPID > 0
                    }, "the container never started")
                #expect(
                    waitUntil(timeout: 20) { processState(runtime.pid) == "T" }, "the runtime never paused")
                // As if the kernel had handed the container's old PID to a new process.
                let victim = try #require(
                    spawn(["/bin/sleep", "30"], withPID: oldPID), "could not make PID \(oldPID) be reused")
                defer {
                    kill(victim.pid, SIGKILL)
                    _ = victim.finish()
                }
                kill(runtime.pid, SIGTERM)
                kill(runtime.pid, SIGCONT)
                let r = runtime.finish()
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    !victim.hasExited,
                    "SIGTERM for the runtime was forwarded to PID \(oldPID), which now belongs to another process\n\(r)"
                )
            }
        }

        @Test(
            "the state root is reachable by root alone: made 0700, and an older 0755 one is tightened",
            arguments: ["step05", "step07", "step08", "step10"])
        func stateRootIsPrivate(step: String) throws {
            try withSandbox(step, image: true) { box in
                // The sandbox made the root 0755, as an older runtime would have.
                chmod(box.root, 0o755)
                let r = box.run(Self.runArguments(step, box) + ["true"])
                #expect(r.exitCode == 0, "\(r)")
                var info = stat()
                #expect(stat(box.root, &info) == 0)
                #expect(
                    info.st_mode & 0o7777 == 0o700,
                    "Expected mode 700 on \(box.root), got \(String(info.st_mode & 0o7777, radix: 8))")
                // An unpacked image holds setuid-root files (busybox's su): no other user may reach it.
                let nobody = runProcess([
                    "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/ls",
                    box.root + "/images",
                ])
                #expect(nobody.exitCode != 0, "an unprivileged user can list the images\n\(nobody)")
                #expect(nobody.stderr.contains("Permission denied"), "\(nobody)")
            }
        }

        @Test("init runs with the runtime's environment only: the host's loader never sees the user's -e")
        func initDoesNotGetTheUsersEnvironment() throws {
            try withSandbox("step10", image: true) { box in
                let library = "/nonexistent-mydocker-\(Harness.random(in: 100_000...999_999)).so"
                let r = box.run([
                    "run", "--name", box.newName(), "-e", "LD_PRELOAD=\(library)", "busybox", "sh", "-c",
                    "echo $LD_PRELOAD",
                ])
                #expect(r.exitCode == 0, "\(r)")
                // The command still gets it: it is the container's business.
                #expect(r.stdout == library + "\n", "\(r)")
                #expect(
                    !r.stderr.contains("LD_PRELOAD"),
                    "the host's loader read the container's LD_PRELOAD\n\(r)")
            }
        }

        @Test(
            "a variable the runtime reserves is refused in -e, for run and exec",
            arguments: [
                ["run", "-e", "MYDOCKER_ROOT=/", "busybox", "true"],
                ["run", "-e", "MYDOCKER_EXEC_PID=self", "-e", "PATH=/tmp", "busybox", "true"],
                ["run", "-e", "MYDOCKER_TRACE", "busybox", "true"],
                ["exec", "-e", "MYDOCKER_EXEC_PID=1", "web", "ls", "/"],
            ])
        func reservedVariablesAreRefused(arguments: [String]) throws {
            try withSandbox("step10", image: true) { box in
                let r = box.run(arguments, environment: ["MYDOCKER_TRACE": "0"])
                let name = arguments[2].split(separator: "=")[0]
                #expect(
                    r.exitCode == 125
                        && r.stderrLines == [
                            "step10: invalid environment variable '\(arguments[2])': names starting with MYDOCKER_ are reserved for the runtime"
                        ],
                    "\(name) should be refused\n\(r)")
                let records =
                    (try? FileManager.default.contentsOfDirectory(atPath: box.root + "/containers")) ?? []
                #expect(records.isEmpty, "a refused run left a record: \(records)")
            }
        }

        @Test(
            "a MYDOCKER_ROOT that would inject mount options or slip past mountinfo is refused",
            arguments: [
                // `,` and `:` would add overlay options and lower layers.
                "/tmp/md,upperdir=/etc", "/tmp/md:/etc",
                // mountinfo escapes whitespace and backslashes (`\040`), so its checks would miss them.
                "/tmp/md root", "/tmp/md\troot", "/tmp/md\nroot", "/tmp/md\\root",
                // mountinfo shows canonical paths.
                "/tmp/md/../md2", "/tmp/./md", "/tmp//md", "/tmp/md/", "/",
                // Odd bytes.
                "/tmp/md\u{1b}[2J", "/tmp/mdé",
            ])
        func unsafeRootsAreRefused(root: String) throws {
            try withSandbox("step10", image: true) { box in
                for arguments in [["run", "--name", box.newName(), "busybox", "true"], ["ps"]] {
                    let r = box.run(arguments, environment: ["MYDOCKER_ROOT": root])
                    #expect(
                        r.exitCode == 125 && r.stderrLines.count == 1
                            && r.stderr.hasPrefix("step10: MYDOCKER_ROOT "), "\(r)")
                }
                #expect(!FileManager.default.fileExists(atPath: "/tmp/md"), "a refused root was created")
            }
        }

        @Test("a MYDOCKER_ROOT through a symlink, or owned by another user, is refused")
        func rootThroughASymlinkOrForeignIsRefused() throws {
            try withSandbox("step10", image: true) { box in
                let link = box.scratch + "/link"
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: box.root)
                let viaLink = box.run(["ps"], environment: ["MYDOCKER_ROOT": link])
                #expect(
                    viaLink.exitCode == 125
                        && viaLink.stderrLines == [
                            "step10: MYDOCKER_ROOT must not go through a symlink: '\(link)' is '\(box.root)'"
                        ], "\(viaLink)")
                let foreign = box.scratch + "/foreign"
                try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: false)
                chown(foreign, 65534, 65534)
                let r = box.run(["ps"], environment: ["MYDOCKER_ROOT": foreign])
                #expect(
                    r.exitCode == 125
                        && r.stderrLines == [
                            "step10: MYDOCKER_ROOT '\(foreign)' belongs to uid 65534, not root: that user could change the runtime's files"
                        ], "\(r)")
            }
        }
    }
}

/// Field 3 of /proc/PID/stat: R, S, T (stopped), Z...; nil once the process is gone.
private func processState(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}

/// argv[0]'s last component, from /proc/PID/cmdline.
private func commandName(of pid: pid_t) -> String? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else {
        return nil
    }
    let first = data.split(separator: 0).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
    return first.split(separator: "/").last.map(String.init)
}
