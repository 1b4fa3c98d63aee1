import Foundation
import Testing

extension Steps {
    /// Step 05: `run` unpacks the busybox image once to `images/busybox/`, mounts an overlay with it
    /// as the read-only lower layer and `overlay/default/{upper,work}` as the writable layer,
    /// and init pivot_roots into `merged`, detaches the old root, and mounts /proc, a read-only
    /// /sys and a tmpfs /dev holding only safe nodes. Kernel facts checked: after pivot_root and
    /// the MNT_DETACH unmount no host path is reachable (not by `..`, not by /proc/1/root);
    /// overlayfs writes land in the upper layer (a deletion is a 0:0 whiteout) and the lower layer
    /// never changes; a devpts with `newinstance` has its own pty numbers; a read-only mount fails
    /// writes with EROFS. Steps 05-07 share `overlay/default`, held by an flock(2).
    @Suite("Step 05: a root filesystem", .serialized, .timeLimit(.minutes(5)))
    struct Step05Tests {
        @Test("ls / is the busybox image's top level, and the shell is busybox", .tags(.concept))
        func rootIsTheImage() throws {
            try withSandbox("step05", image: true) { box in
                let expected = try Self.topLevelNames(ofImage: box.root + "/images/busybox.tar")
                let r = box.run(["run", "ls", "-1", "/"])
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    r.stdout.split(separator: "\n").map(String.init) == expected,
                    "Expected the image's top level \(expected) from ls /\n\(r)")
                // The running shell's own executable, not just the link: /bin/sh on the host is
                // usually dash or bash.
                let shell = box.run(["run", "sh", "-c", "readlink /bin/sh; readlink /proc/$$/exe"])
                #expect(shell.stdout == "/bin/busybox\n/bin/busybox\n", "\(shell)")
            }
        }

        @Test(
            "host-only files are unreachable: by path, through /proc/1/root, by .. from /, at the rootfs's host path",
            .tags(.concept)
        )
        func hostIsUnreachable() throws {
            try withSandbox("step05", image: true) { box in
                let marker = try Self.makeMarker(in: box)
                let hostPaths = [
                    marker,
                    // PID 1 is the container's own init: its root is the container's root.
                    "/proc/1/root" + marker,
                    // Where the image and the merged layer live on the host.
                    box.root + "/images/busybox",
                    box.root + "/overlay/default/merged",
                    // Where pivot_root put the old root, unmounted and removed since.
                    "/.pivot_root",
                ]
                let script =
                    "for p in \"$@\"; do if [ -e \"$p\" ]; then echo \"reachable: $p\"; fi; done; echo checked"
                let r = box.run(["run", "sh", "-c", script, "sh"] + hostPaths)
                #expect(r.exitCode == 0 && r.stdout == "checked\n", "Expected no host path reachable\n\(r)")

                let names = try Self.topLevelNames(ofImage: box.root + "/images/busybox.tar")
                let listing = names.joined(separator: "\n") + "\n"
                let up = box.run([
                    "run", "sh", "-c", "cd /; cd ..; pwd; ls -1; echo ---; ls -1 /proc/1/root/",
                ])
                #expect(
                    up.stdout == "/\n" + listing + "---\n" + listing,
                    "Expected .. from / and /proc/1/root/ to be the image's root\n\(up)")
            }
        }

        @Test("under step04, the previous step, the same host file is visible: it has no root of its own")
        func previousStepSeesTheHost() throws {
            try withSandbox("step05", image: true) { box in
                let marker = try Self.makeMarker(in: box)
                let script = "if [ -e \"$1\" ]; then echo reachable; else echo unreachable; fi"
                let old = box.run(step: "step04", ["run", "sh", "-c", script, "sh", marker])
                #expect(old.stdout == "reachable\n", "step04 unexpectedly hides the host's files\n\(old)")
                let now = box.run(["run", "sh", "-c", script, "sh", marker])
                #expect(now.stdout == "unreachable\n", "\(now)")
            }
        }

        @Test(
            "a write lands in the upper layer and is gone in the next run; the image directory never changes",
            .tags(.concept))
        func writesVanish() throws {
            try withSandbox("step05", image: true) { box in
                let image = box.root + "/images/busybox"
                let workspace = box.root + "/overlay/default"
                let first = box.run(["run", "true"])
                #expect(first.exitCode == 0, "\(first)")
                let imageBefore = Self.tree(image)
                #expect(imageBefore.count > 100, "the image was not unpacked to \(image)\n\(first)")

                // Write a file, delete one from the image, then wait for the host's go-ahead, which
                // the host gives by writing through the merged view.
                let script =
                    Self.inTheImageOnly + "echo note > /root/note && rm /etc/hostname && echo ready; "
                    + "while [ ! -e /tmp/go ]; do sleep 0.05; done"
                let running = box.start(["run", "sh", "-c", script])
                #expect(waitUntil { running.stdoutSoFar == "ready\n" }, "the container never got ready")
                #expect(
                    (try? String(contentsOfFile: workspace + "/upper/root/note", encoding: .utf8))
                        == "note\n",
                    "the new file is not in \(workspace)/upper")
                var whiteout = stat()
                let isWhiteout =
                    lstat(workspace + "/upper/etc/hostname", &whiteout) == 0
                    && (whiteout.st_mode & S_IFMT) == S_IFCHR && whiteout.st_rdev == 0
                #expect(
                    isWhiteout, "a deleted image file should be a 0:0 character device (whiteout) in upper")
                _ = FileManager.default.createFile(atPath: workspace + "/merged/tmp/go", contents: nil)
                let r = running.finish()
                #expect(r.exitCode == 0, "\(r)")

                #expect(!FileManager.default.fileExists(atPath: workspace), "\(workspace) is left after exit")
                #expect(Self.tree(image) == imageBefore, "the image directory \(image) changed")
                let next = box.run([
                    "run", "sh", "-c", "[ -e /root/note ] || echo no-note; cat /etc/hostname",
                ])
                #expect(next.stdout == "no-note\nmydocker\n", "the previous run's changes survived\n\(next)")
            }
        }

        @Test(
            "the device nodes in /dev work",
            arguments: [
                // /dev/null swallows writes
                ("echo x > /dev/null && echo written", "written\n", [String](), Int32(0)),
                // /dev/urandom hands out bytes
                ("head -c 4 /dev/urandom | wc -c", "4\n", [], 0),
                // /dev/zero reads as zero bytes
                ("head -c 3 /dev/zero | od -An -tx1", " 00 00 00\n", [], 0),
                // /dev/full fails every write with ENOSPC
                ("echo x > /dev/full", "", ["sh: write error: No space left on device"], 1),
                // /dev/ptmx opens a pty of the container's own devpts instance, numbered from 0
                ("exec 3<>/dev/ptmx && ls /dev/pts", "0\nptmx\n", [], 0),
                // /dev/shm is a writable tmpfs
                ("echo shared > /dev/shm/f && cat /dev/shm/f", "shared\n", [], 0),
            ])
        func devicesWork(script: String, stdout: String, stderr: [String], code: Int32) throws {
            try withSandbox("step05", image: true) { box in
                let r = box.run(["run", "sh", "-c", script])
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == stdout, "Expected \(stdout.debugDescription) as stdout\n\(r)")
                #expect(r.stderrLines.map(String.init) == stderr, "\(r)")
            }
        }

        @Test(
            "/dev holds only the safe nodes, with their device numbers, and /dev/pts is a new devpts",
            .tags(.concept))
        func devIsMinimal() throws {
            try withSandbox("step05", image: true) { box in
                let list = box.run(["run", "ls", "/dev"])
                let expected = [
                    "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
                    "urandom", "zero",
                ]
                #expect(
                    list.stdout.split(separator: "\n").map(String.init) == expected,
                    "Expected exactly \(expected) in /dev (no host disks)\n\(list)")

                let numbers = [
                    ("null", "1:3"), ("zero", "1:5"), ("full", "1:7"), ("random", "1:8"), ("urandom", "1:9"),
                    ("tty", "5:0"),
                ]
                let nodes = box.run(["run", "stat", "-c", "%n %F %t:%T %a"] + numbers.map { "/dev/" + $0.0 })
                let expectedNodes = numbers.map { "/dev/\($0.0) character special file \($0.1) 666" }
                #expect(nodes.stdout.split(separator: "\n").map(String.init) == expectedNodes, "\(nodes)")

                let mounts = box.run(["run", "cat", "/proc/mounts"])
                let pts = mounts.stdout.split(separator: "\n").map { $0.split(separator: " ") }
                    .first { $0.count > 3 && $0[1] == "/dev/pts" }
                #expect(pts?[2] == "devpts", "/dev/pts is not a devpts\n\(mounts)")
                let options = pts.map { $0[3].split(separator: ",").map(String.init) } ?? []
                #expect(options.contains("ptmxmode=666"), "devpts without ptmxmode=666\n\(mounts)")
                let dev = mounts.stdout.split(separator: "\n").first { $0.hasPrefix("tmpfs /dev tmpfs ") }
                #expect(dev != nil, "/dev is not a tmpfs\n\(mounts)")
            }
        }

        @Test("/sys and /proc/sys are read-only, and the masked /proc files are /dev/null", .tags(.concept))
        func kernelInterfacesAreGuarded() throws {
            try withSandbox("step05", image: true) { box in
                let writes = box.run([
                    "run", "sh", "-c",
                    // lo's MTU and the hostname belong to the container's own namespaces: only the
                    // read-only mounts can stop these writes.
                    "touch /sys/x; echo 65536 > /sys/class/net/lo/mtu; echo h > /proc/sys/kernel/hostname; "
                        + "grep -E '^[a-z]+ /(sys|proc/sys) ' /proc/mounts | cut -d' ' -f2-4 | cut -d, -f1",
                ])
                #expect(
                    writes.stderrLines == [
                        "touch: /sys/x: Read-only file system",
                        "sh: can't create /sys/class/net/lo/mtu: Read-only file system",
                        "sh: can't create /proc/sys/kernel/hostname: Read-only file system",
                    ],
                    "\(writes)")
                #expect(writes.stdout == "/sys sysfs ro\n/proc/sys proc ro\n", "\(writes)")

                // Masked only where the kernel has them; the host's /proc tells which.
                let masked = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sysrq-trigger"]
                    .filter { FileManager.default.fileExists(atPath: $0) }
                #expect(!masked.isEmpty, "none of the masked /proc files exists on this kernel")
                let r = box.run(
                    [
                        "run", "sh", "-c",
                        "for p in \"$@\"; do echo \"$p $(stat -c '%t:%T' $p) $(wc -c < $p)\"; done",
                        "sh",
                    ] + masked)
                let expected = masked.map { "\($0) 1:3 0\n" }.joined()
                #expect(
                    r.stdout == expected, "Expected each masked file to be /dev/null (1:3) and empty\n\(r)")
            }
        }

        @Test(
            "-ti sh in a real terminal: busybox prompt, ls / shows the image, Ctrl-C reaches the shell, exit 5",
            .tags(.concept)
        )
        func interactiveShell() throws {
            try withSandbox("step05", image: true) { box in
                let names = try Self.topLevelNames(ofImage: box.root + "/images/busybox.tar")
                let term = try Terminal(box, ["run", "-ti", "sh"])
                defer { term.close() }
                // busybox ash's prompt is "/ # " (the working directory, then #); Terminal's
                // waitForPrompt() expects a bare "#".
                let atPrompt = {
                    term.screen.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces) == "/ #"
                }
                #expect(waitUntil(timeout: 15, atPrompt), "no prompt:\n\(term.screen)")
                term.type("ls /")
                var shown: [String] = []
                let listed = waitUntil(timeout: 15) {
                    let lines = term.screen.split(separator: "\n")
                    guard let command = lines.lastIndex(where: { $0.hasSuffix("# ls /") }),
                        lines.last?.trimmingCharacters(in: .whitespaces) == "/ #", lines.count - 1 > command
                    else { return false }
                    shown = lines[(command + 1)..<(lines.count - 1)].flatMap { $0.split(separator: " ") }
                        .map(String.init).sorted()
                    return true
                }
                #expect(listed && shown == names, "Expected \(names) from ls /\n\(term.screen)")

                term.type("sleep 31")
                #expect(
                    waitUntil {
                        MachineState.descendants(of: getpid()).contains { $0.command == "sleep 31 " }
                    },
                    "sleep never started:\n\(term.screen)")
                term.press("C-c")
                term.type("echo $((6*7))")
                // If Ctrl-C missed the sleep, the answer would come only after 31 seconds.
                #expect(term.waitFor("\n42\n"), "Ctrl-C did not return to the shell:\n\(term.screen)")
                term.type("exit 5")
                #expect(term.waitForExit() == 5, "\(term.screen)")
            }
        }

        @Test(
            "a second run while one is running fails with one line and exit 125; the first is unaffected",
            .tags(.concept))
        func oneWorkspaceAtATime() throws {
            try withSandbox("step05", image: true) { box in
                let workspace = box.root + "/overlay/default"
                let code = Int32(Harness.random(in: 1...120))
                let script =
                    Self.inTheImageOnly
                    + "echo kept > /root/note && echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                    + "cat /root/note; exit \(code)"
                let first = box.start(["run", "sh", "-c", script])
                #expect(waitUntil { first.stdoutSoFar == "ready\n" }, "the first container never got ready")

                let second = box.run(["run", "true"])
                let message =
                    "step05: another container is running in \(workspace) (this step runs one at a time)"
                #expect(second.exitCode == 125, "\(second)")
                expectOneLineError(second, reference: message)

                _ = FileManager.default.createFile(atPath: workspace + "/merged/tmp/go", contents: nil)
                let r = first.finish()
                #expect(
                    r.exitCode == code && r.stdout == "ready\nkept\n",
                    "the first container lost its layer or its exit code\n\(r)")
                #expect(Self.mounts(under: box.root).isEmpty, "\(Self.mounts(under: box.root))")
                #expect(!FileManager.default.fileExists(atPath: workspace), "\(workspace) is left after exit")
            }
        }

        @Test(
            "a missing image is one line pointing at rootfs-tools, exit 125, and nothing is created",
            .tags(.concept))
        func missingImage() throws {
            try withSandbox("step05") { box in
                let r = box.run(["run", "true"])
                let message =
                    "step05: rootfs image 'busybox' not found under \(box.root)/images "
                    + "(build it: sudo rootfs-tools/build-busybox-image.sh)"
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: message)
                let created = try FileManager.default.contentsOfDirectory(atPath: box.root)
                #expect(created.isEmpty, "a failed run created \(created) under \(box.root)")
            }
        }

        @Test(
            "nothing stays mounted under MYDOCKER_ROOT and the layer is gone, however the command ends",
            arguments: [
                // the command succeeds
                (["true"], 0),
                // the command is not in the image: init's exec fails
                (["no-such-command-xyz"], 127),
                // the kernel OOM-kills the command under -m (step03's guarantee, now with a layer to undo)
                (["-m", "100m", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"], 137),
            ] as [([String], Int32)])
        func nothingLeftMounted(arguments: [String], code: Int32) throws {
            try withSandbox("step05", image: true) { box in
                let r = box.run(["run"] + arguments)
                #expect(r.exitCode == code, "\(r)")
                #expect(Self.mounts(under: box.root).isEmpty, "\(Self.mounts(under: box.root))\n\(r)")
                #expect(!FileManager.default.fileExists(atPath: box.root + "/overlay/default"), "\(r)")
                #expect(
                    FileManager.default.fileExists(atPath: box.root + "/images/busybox/bin/busybox"), "\(r)")
            }
        }

        @Test(
            "after the runtime is killed with SIGKILL, the next run clears its stale layer and succeeds",
            .tags(.concept))
        func killedRuntimeIsCleanedUp() throws {
            try withSandbox("step05", image: true) { box in
                let (pid1, cgroup) = try Self.orphanContainer(
                    box, script: "echo stale > /root/stale; exec sleep 30")
                let merged = box.root + "/overlay/default/merged"
                #expect(Self.mounts(under: box.root) == [merged], "no stale layer to clean up")

                kill(pid1, SIGKILL)
                #expect(
                    waitUntil {
                        box.reapOrphans()
                        return !Self.isAlive(pid1)
                    }, "the orphan did not die")
                let next = box.run(["run", "sh", "-c", "ls /root; cat /etc/hostname"])
                #expect(
                    next.exitCode == 0 && next.stdout == "mydocker\n", "the stale layer survived\n\(next)")
                #expect(Self.mounts(under: box.root).isEmpty, "\(Self.mounts(under: box.root))")
                #expect(!FileManager.default.fileExists(atPath: box.root + "/overlay/default"))

                let left = Self.cgroupDirectories(named: cgroup)
                #expect(left.isEmpty, "cgroup of the killed runtime left: \(left.sorted())")
                for directory in left { rmdir(directory) }
            }
        }

        @Test("a container dies with its runtime (SIGKILL), so no later run can share a live workspace")
        func containerDiesWithItsRuntime() throws {
            try withSandbox("step05", image: true) { box in
                let (pid1, cgroup) = try Self.orphanContainer(box, script: "exec sleep 30")
                // PR_SET_PDEATHSIG: the kernel sends the container SIGKILL when its runtime dies.
                #expect(
                    waitUntil {
                        box.reapOrphans()
                        return !Self.isAlive(pid1)
                    }, "the container outlived its runtime")
                let after = box.run(["run", "true"])
                #expect(after.exitCode == 0 && Self.mounts(under: box.root).isEmpty, "\(after)")
                // The next run also cleared the killed one's cgroup (same name: the workspace's).
                #expect(
                    Self.cgroupDirectories(named: cgroup).isEmpty, "\(Self.cgroupDirectories(named: cgroup))")
            }
        }

        @Test(
            "the root is the overlay, mounted volatile: the layer is deleted at exit, so it is never synced to disk",
            .tags(.concept))
        func rootIsVolatileOverlay() throws {
            try withSandbox("step05", image: true) { box in
                // mountinfo's line for the root: `ID PARENT MAJ:MIN / / OPTIONS ... - overlay overlay SUPER`.
                let r = box.run(["run", "sh", "-c", "grep ' / / ' /proc/self/mountinfo"])
                let superblock = (r.stdout.components(separatedBy: " - ").last ?? "")
                    .trimmingCharacters(in: .newlines).split(separator: " ")
                #expect(r.exitCode == 0 && superblock.first == "overlay", "\(r)")
                // Newer kernels (6.18 here) spell the option `fsync=volatile` in mountinfo.
                let options = superblock.last?.split(separator: ",") ?? []
                #expect(
                    options.contains("volatile") || options.contains("fsync=volatile"),
                    "Expected the root overlay mounted with volatile\n\(r)")
            }
        }

        @Test(
            "earlier guarantees still hold in the new root",
            arguments: [
                // step02: the command is PID 1 of its own PID namespace
                (["sh", "-c", "echo $$"], "1\n", Int32(0)),
                // step02: the exit code passes through (a random one replaces CODE)
                (["sh", "-c", "exit $1", "sh", "CODE"], "", -1),
                // step04: arguments with spaces, quotes and empty strings survive the pipe
                (["printf", "[%s]", "a  b", "", "it's \"q\""], "[a  b][][it's \"q\"]", 0),
            ])
        func earlierGuarantees(command: [String], stdout: String, code: Int32) throws {
            try withSandbox("step05", image: true) { box in
                let wanted = code >= 0 ? code : Int32(Harness.random(in: 1...120))
                let r = box.run(["run"] + command.map { $0 == "CODE" ? "\(wanted)" : $0 })
                #expect(r.exitCode == wanted, "\(r)")
                #expect(r.stdout == stdout, "Expected \(stdout.debugDescription) as stdout\n\(r)")
            }
        }

        // MARK: helpers

        /// The sorted top-level names in an image tarball (entries look like `./bin/ls`).
        static func topLevelNames(ofImage tarball: String) throws -> [String] {
            let r = runProcess(["/usr/bin/env", "tar", "-tf", tarball])
            guard r.exitCode == 0 else { throw HarnessError("listing \(tarball) failed\n\(r)") }
            let names = r.stdout.split(separator: "\n").compactMap { entry -> String? in
                let path = entry.hasPrefix("./") ? entry.dropFirst(2) : entry[...]
                return path.split(separator: "/").first.map(String.init)
            }
            return Set(names).sorted()
        }

        /// A file that exists only on the host, at a path the image does not have.
        static func makeMarker(in box: Sandbox) throws -> String {
            let marker = box.scratch + "/host-only-\(Harness.random(in: 1000...9999))"
            try "host\n".write(toFile: marker, atomically: false, encoding: .utf8)
            return marker
        }

        /// Every entry below `directory` with its type, mode, size and modification time (lstat, so
        /// symlinks are not followed; no `find -printf`, which busybox lacks in the VM).
        static func tree(_ directory: String) -> [String] {
            let fm = FileManager.default
            guard let entries = fm.subpaths(atPath: directory) else { return [] }
            return entries.map { entry -> String in
                var info = stat()
                guard lstat(directory + "/" + entry, &info) == 0 else { return "\(entry) ?" }
                return
                    "\(entry) \(info.st_mode) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
            }.sorted()
        }

        /// Mount points in the host's mount namespace below `root`.
        static func mounts(under root: String) -> [String] {
            MachineState.readMounts().values.map(\.point).filter { $0.hasPrefix(root + "/") }.sorted()
        }

        /// Running, and not a zombie waiting for us to reap it.
        static func isAlive(_ pid: pid_t) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            return !stat[close...].hasPrefix(") Z")
        }

        /// Prefix of every script that writes or deletes files: it stops (exit 99) unless `/` is the
        /// test image (its /etc/hostname says mydocker). A step without a root of its own (step 04,
        /// or a learner's workbench on its way) would otherwise run `rm /etc/hostname` on the host.
        static let inTheImageOnly =
            "[ \"$(cat /etc/hostname 2>/dev/null)\" = mydocker ] || { echo 'not in the image: no write' >&2; exit 99; }; "

        /// Starts `run sh -c SCRIPT` (the script must end in `exec sleep`), waits until the
        /// container's PID 1 is that sleep, and kills the runtime with SIGKILL. Returns PID 1 (as the
        /// host numbers it), now an orphan re-parented to the test process, still running, and the
        /// name of its cgroup (`mydocker/NAME`).
        static func orphanContainer(_ box: Sandbox, script: String) throws -> (pid: pid_t, cgroup: String) {
            let running = box.start(["run", "sh", "-c", Self.inTheImageOnly + script])
            var pid1: pid_t = 0
            let started = waitUntil { () -> Bool in
                pid1 = childPIDs(of: running.pid).first ?? 0
                return pid1 > 0
                    && (try? String(contentsOfFile: "/proc/\(pid1)/cmdline", encoding: .utf8))?
                        .hasPrefix("sleep") == true
            }
            guard started else {
                throw HarnessError("the container's sleep never started\n\(running.finish(timeout: 1))")
            }
            // /proc/PID/cgroup lines end in the path, e.g. `4:memory:/mydocker/0123abcd` (v1) or
            // `0::/mydocker/0123abcd` (v2).
            let membership = (try? String(contentsOfFile: "/proc/\(pid1)/cgroup", encoding: .utf8)) ?? ""
            let cgroup = membership.split(separator: "\n").lazy.compactMap { line -> String? in
                guard let range = line.range(of: "/mydocker/") else { return nil }
                return String(line[range.upperBound...])
            }.first
            kill(running.pid, SIGKILL)
            let r = running.finish()
            #expect(r.exitCode == 137, "the runtime survived SIGKILL?\n\(r)")
            guard let cgroup, !cgroup.isEmpty else {
                throw HarnessError("the container is in no mydocker cgroup:\n\(membership)")
            }
            return (pid1, cgroup)
        }

        /// The directories of cgroup `mydocker/NAME` in every hierarchy (v1) or the unified tree (v2).
        static func cgroupDirectories(named name: String) -> [String] {
            MachineState.readContainerCgroups().filter { $0.hasSuffix("/mydocker/" + name) }.sorted()
        }
    }
}
