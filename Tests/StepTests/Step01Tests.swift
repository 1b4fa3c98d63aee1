import Foundation
import Testing

extension Steps {
    /// Step 01 puts a command in a new UTS namespace (unshare(2) + execve(2)). Kernel facts checked:
    /// a UTS namespace has its own hostname; every other namespace is still the host's.
    @Suite("Step 01: the UTS namespace", .timeLimit(.minutes(5)))
    struct Step01Tests {
        @Test("a hostname set inside does not change the host's", .tags(.concept))
        func hostnameInsideStaysInside() throws {
            try withSandbox("step01") { box in
                let hostBefore = hostHostname()
                let name = "t-host-\(Harness.random(in: 1000...9999))"
                let r = box.run(["sh", "-c", "hostname \(name) && hostname"])
                #expect(r.exitCode == 0, "\(r)")
                #expect(r.stdout == name + "\n", "Expected \(name.debugDescription) as stdout\n\(r)")
                #expect(hostHostname() == hostBefore, "the host's hostname changed to \(hostHostname())")
            }
        }

        @Test(
            "the child's /proc/self/ns/uts differs from the host's; its mount and PID namespaces do not",
            .tags(.concept))
        func onlyUTSIsNew() throws {
            try withSandbox("step01") { box in
                let r = box.run([
                    "sh", "-c", "for n in uts mnt pid; do readlink /proc/self/ns/$n; done",
                ])
                let links = r.stdout.split(separator: "\n").map(String.init)
                #expect(links.count == 3, "\(r)")
                guard links.count == 3 else { return }
                #expect(links[0] != namespace("uts"), "uts namespace is the host's\n\(r)")
                #expect(links[1] == namespace("mnt"), "step01 should not make a mount namespace\n\(r)")
                #expect(links[2] == namespace("pid"), "step01 should not make a PID namespace\n\(r)")
            }
        }

        @Test("the command's exit code is the runtime's, and the default command is /bin/sh", .tags(.concept))
        func exitCodePassesThrough() throws {
            try withSandbox("step01") { box in
                let code = Int32(Harness.random(in: 1...120))
                let r = box.run(["sh", "-c", "exit \(code)"])
                #expect(r.exitCode == code, "\(r)")
                let shell = box.run([], stdin: "echo from-default-shell; exit 4\n")
                #expect(shell.stdout == "from-default-shell\n" && shell.exitCode == 4, "\(shell)")
            }
        }

        @Test(
            "bad input is one line on stderr with the shell's or docker's exit code", .tags(.concept),
            arguments: [
                // no such program: 127, as a shell says "not found"
                (
                    ["no-such-command-xyz"], Int32(127),
                    "step01: exec no-such-command-xyz: No such file or directory (ENOENT)"
                ),
                // found but not executable: 126
                (["/etc/passwd"], Int32(126), "step01: exec /etc/passwd: Permission denied (EACCES)"),
                // a flag step01 does not know: 125
                (["--memory", "1m"], Int32(125), "step01: unknown flag '--memory' (see step01 --help)"),
            ])
        func badInput(arguments: [String], code: Int32, message: String) throws {
            try withSandbox("step01") { box in
                let r = box.run(arguments)
                #expect(r.exitCode == code, "\(r)")
                expectOneLineError(r, reference: message)
            }
        }

        @Test("without root it refuses with one line and exit 125")
        func refusesWithoutRoot() throws {
            try withSandbox("step01") { box in
                let r = runProcess(
                    [
                        "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        Harness.binary("step01"), "true",
                    ])
                if Harness.isWorkbench("step01") {
                    expectOneLineError(r, exitCode: 125, reference: "step01: must be run as root")
                } else {
                    #expect(r.exitCode == 125, "\(r)")
                    #expect(
                        r.stderrLines.count == 1 && r.stderr.hasPrefix("step01: must be run as root"), "\(r)")
                }
                _ = box
            }
        }
    }
}
