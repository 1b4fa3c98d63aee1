import CContainerSupport
import Foundation
import Testing

extension Steps {
    /// Step 12: the container's root gets only what it needs, as with docker's default profile.
    /// Kernel facts checked: the bounding, permitted and effective sets are docker's 14
    /// capabilities (0xa80425fb) and the inheritable and ambient sets are empty
    /// (/proc/self/status); without CAP_SYS_ADMIN and with umount/mount refused by seccomp, the
    /// masks over /proc stay; the device cgroup (v1 devices.allow, v2 a BPF_CGROUP_DEVICE program)
    /// lets mknod through and refuses the open; the cgroup namespace makes the container's cgroup
    /// `/`, mounted read-only; the seccomp filter answers EPERM (keyctl, open_by_handle_at, clone of
    /// a new namespace, any x32 call); a non-root user ends with no capabilities at all; pids.max
    /// contains a fork bomb; exec gets the same. Each protection has its switch (`--cap-add`,
    /// `--privileged`, `seccomp=unconfined`), and each switch is shown to really turn it off.
    ///
    /// The syscall probes are tiny static x86_64 programs the test writes byte by byte (busybox has
    /// no keyctl applet, and the VM has no compiler): each makes one system call and exits with its
    /// errno, 0 on success.
    @Suite("Step 12: hardening", .timeLimit(.minutes(2)))
    struct Step12Tests {
        static let defaultCapabilities: UInt64 = 0xa804_25fb

        @Test(
            "/proc/self/status shows exactly the expected CapBnd, CapPrm and CapEff; CapInh and CapAmb are empty",
            .tags(.concept),
            arguments: [
                // docker's default 14
                ([], defaultCapabilities),
                // a name with CAP_ and in lower case, added
                (["--cap-add", "cap_sys_admin"], defaultCapabilities | 1 << 21),
                // one dropped
                (["--cap-drop", "NET_RAW"], defaultCapabilities & ~(1 << 13)),
                // ALL dropped, one added back
                (["--cap-drop", "ALL", "--cap-add", "CHOWN"], 1),
                // added and dropped: the add wins, as in docker
                (["--cap-drop", "KILL", "--cap-add", "KILL"], defaultCapabilities),
            ] as [([String], UInt64)])
        func capabilitySets(flags: [String], expected: UInt64) throws {
            try withSandbox("step12", image: true) { box in
                let r = box.run(["run"] + flags + ["busybox", "grep", "^Cap", "/proc/self/status"])
                #expect(r.exitCode == 0, "\(r)")
                let sets = Self.capabilitySets(r.stdout)
                let want = String(format: "%016llx", expected)
                let zero = String(repeating: "0", count: 16)
                let expectedSets = [
                    "CapInh": zero, "CapPrm": want, "CapEff": want, "CapBnd": want, "CapAmb": zero,
                ]
                #expect(sets == expectedSets, "Expected \(expectedSets)\n\(r)")
            }
        }

        @Test(
            "--privileged gets every capability the runtime has, no seccomp filter, and the host's devices",
            .tags(.concept))
        func privileged() throws {
            try withSandbox("step12", image: true) { box in
                let hostBounding = Self.capabilitySets(
                    try String(contentsOfFile: "/proc/self/status", encoding: .utf8))[
                        "CapBnd"]
                let script = """
                    grep -E '^(CapBnd|CapEff|Seccomp):' /proc/self/status
                    echo "kmsg: $(stat -c %t:%T /dev/kmsg)"
                    """
                let r = box.run(["run", "--privileged", "busybox", "sh", "-c", script])
                #expect(r.exitCode == 0, "\(r)")
                let sets = Self.capabilitySets(r.stdout)
                #expect(sets["CapBnd"] == hostBounding && sets["CapEff"] == hostBounding, "\(r)")
                #expect(r.stdout.contains("Seccomp:\t0\n"), "a privileged container has a filter\n\(r)")
                #expect(r.stdout.contains("kmsg: 1:b\n"), "the host's /dev/kmsg is missing\n\(r)")
            }
        }

        @Test(
            "seccomp refuses keyctl, open_by_handle_at, clone of a new user namespace and x32 calls with EPERM",
            .tags(.concept),
            .enabled(if: probesWork, "the probes are x86_64 programs"),
            arguments: [
                // the default profile: every probe gets EPERM (1)
                ([], ["keyctl": 1, "open_by_handle_at": 1, "clone-newuser": 1, "x32-getpid": 1]),
                // no filter: keyctl works; open_by_handle_at reaches the kernel, which refuses it for want of
                // CAP_DAC_READ_SEARCH (6.1) or faults on the NULL handle first (6.18) (-1: EPERM or
                // EFAULT); x32 is not built into this kernel (ENOSYS) or works (-2: 38 or 0)
                (
                    ["--security-opt", "seccomp=unconfined"],
                    ["keyctl": 0, "open_by_handle_at": -1, "clone-newuser": 0, "x32-getpid": -2]
                ),
                // the capability docker ties it to lets open_by_handle_at through the filter: the
                // NULL handle then faults (EFAULT, 14)
                (
                    ["--cap-add", "DAC_READ_SEARCH"],
                    ["keyctl": 1, "open_by_handle_at": 14, "clone-newuser": 1]
                ),
                // privileged: no filter, every capability
                (["--privileged"], ["keyctl": 0, "open_by_handle_at": 14, "clone-newuser": 0]),
            ] as [([String], [String: Int])])
        func seccompRefuses(flags: [String], expected: [String: Int]) throws {
            try withSandbox("step12", image: true) { box in
                try Self.installHardImage(box)
                // One container runs them all: each probe's exit code is its errno.
                let script =
                    "for p in \(expected.keys.sorted().joined(separator: " ")); do /probe/$p; echo \"$p: $?\"; done"
                let r = box.run(["run"] + flags + ["hard", "sh", "-c", script])
                #expect(r.exitCode == 0, "\(r)")
                for (probe, code) in expected.sorted(by: { $0.key < $1.key }) {
                    let got = r.stdout.split(separator: "\n").first { $0.hasPrefix(probe + ": ") }.flatMap {
                        Int($0.dropFirst(probe.count + 2))
                    }
                    let accepted = code == -1 ? [1, 14] : code == -2 ? [0, 38] : [code]
                    #expect(
                        got.map(accepted.contains) == true,
                        "Expected \(probe) to exit one of \(accepted) (its errno)\n\(r)")
                }
            }
        }

        @Test(
            "step11, the step before, lacks it: every capability, no filter, keyctl works and mknod'd nodes open",
            .enabled(if: probesWork, "the probes are x86_64 programs"))
        func step11LacksHardening() throws {
            try withSandbox("step11", image: true) { box in
                try Self.installHardImage(box)
                let r = box.run([
                    "run", "--name", box.newName(), "hard", "grep", "-E", "^(CapBnd|Seccomp):",
                    "/proc/self/status",
                ])
                #expect(!r.stdout.contains("Seccomp:\t2"), "step11 has a seccomp filter\n\(r)")
                #expect(
                    Self.capabilitySets(r.stdout)["CapBnd"]
                        != String(format: "%016llx", Self.defaultCapabilities), "\(r)")
                let keyctl = box.run(["run", "--name", box.newName(), "hard", "/probe/keyctl"])
                #expect(keyctl.exitCode == 0, "keyctl is refused in step11\n\(keyctl)")
                let kmsg = box.run(["run", "--name", box.newName(), "hard", "sh", "-c", Self.openKmsg])
                #expect(kmsg.stdout == "mknod: 0\nopen: 0\n", "\(kmsg)")
            }
        }

        /// mknod of /dev/kmsg's node (char 1:11, which the host's root can open even where a
        /// sandbox refuses its disks), then only an open: nothing is read.
        static let openKmsg = """
            mknod /tmp/kmsg c 1 11; echo "mknod: $?"
            dd if=/tmp/kmsg of=/dev/null count=0 2>/dev/null; echo "open: $?"
            """

        @Test(
            "mknod of a host device succeeds but opening it fails (the device cgroup); --privileged opens it",
            .tags(.concept))
        func deviceCgroup() throws {
            try withSandbox("step12", image: true) { box in
                // The host's root can open it: the refusal inside is the container's.
                #expect(FileHandle(forReadingAtPath: "/dev/kmsg") != nil, "the host cannot open /dev/kmsg")
                let r = box.run(["run", "busybox", "sh", "-c", Self.openKmsg])
                #expect(
                    r.stdout == "mknod: 0\nopen: 1\n", "Expected mknod to work and the open to fail\n\(r)")
                // The default devices still work, for any user.
                let safe = box.run([
                    "run", "-u", "nobody", "busybox", "sh", "-c",
                    "head -c 4 /dev/zero | wc -c; echo x > /dev/null",
                ])
                #expect(safe.exitCode == 0 && safe.stdout == "4\n", "\(safe)")
                let privileged = box.run(["run", "--privileged", "busybox", "sh", "-c", Self.openKmsg])
                #expect(privileged.stdout == "mknod: 0\nopen: 0\n", "\(privileged)")
            }
        }

        @Test(
            "masked paths stay masked: docker's list, those the kernel has; --cap-add SYS_ADMIN can undo them",
            .tags(.concept)
        )
        func masksStay() throws {
            try withSandbox("step12", image: true) { box in
                let fm = FileManager.default
                let masked = [
                    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                    "/sys/firmware",
                    "/sys/devices/virtual/powercap",
                ].filter { fm.fileExists(atPath: $0) }
                let readOnly = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
                    .filter {
                        fm.fileExists(atPath: $0)
                    }
                let script = """
                    for p in \(masked.joined(separator: " ")); do
                        if [ -d $p ]; then echo "masked: $p $(ls -A $p | wc -l) $(grep " $p " /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1)"
                        else echo "masked: $p $(stat -c %t:%T $p)"; fi
                    done
                    for p in \(readOnly.joined(separator: " ")); do
                        echo "ro: $p $(grep " $p " /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1)"
                    done
                    for p in \(masked.joined(separator: " ")) \(readOnly.joined(separator: " ")); do
                        umount $p 2>/dev/null && echo "unmounted: $p"
                    done
                    mount -o remount,rw /sys 2>/dev/null && echo "unmounted: /sys"
                    mount -t proc proc /tmp 2>/dev/null && echo "unmounted: a second /proc"
                    true
                    """
                let r = box.run(["run", "busybox", "sh", "-c", script])
                #expect(r.exitCode == 0, "\(r)")
                let expected =
                    masked.map {
                        fm.fileExists(atPath: $0 + "/.") ? "masked: \($0) 0 ro" : "masked: \($0) 1:3"
                    }
                    + readOnly.map { "ro: \($0) ro" }
                let lines = r.stdout.split(separator: "\n").map(String.init)
                #expect(
                    lines.filter { !$0.hasPrefix("unmounted: ") } == expected, "Expected \(expected)\n\(r)")
                #expect(!lines.contains { $0.hasPrefix("unmounted: ") }, "a mask was undone\n\(r)")
                // The switch really turns the protection off: with CAP_SYS_ADMIN the umount works.
                let admin = box.run([
                    "run", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "umount /proc/sys && echo undone",
                ])
                #expect(admin.stdout == "undone\n", "\(admin)")
            }
        }

        @Test(
            "/sys/fs/cgroup is the container's own cgroup, read-only: /proc/self/cgroup says / and writes fail",
            .tags(.concept)
        )
        func cgroupNamespace() throws {
            try withSandbox("step12", image: true) { box in
                let v2 = Step09Tests.cgroupV2
                // On v2 the container's own pids.max; on v1 its memory hierarchy's limit file.
                let limitFile = v2 ? "/sys/fs/cgroup/pids.max" : "/sys/fs/cgroup/memory/memory.limit_in_bytes"
                let script = """
                    echo "cgroups: $(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\\n' ' ')"
                    echo "limit: $(cat \(limitFile))"
                    echo max 2>&1 > \(limitFile)
                    mkdir \(v2 ? "/sys/fs/cgroup/x" : "/sys/fs/cgroup/memory/x") 2>&1
                    mount -t cgroup2 none /tmp 2>/dev/null && echo "mounted: cgroup2"
                    mount -o remount,rw /sys/fs/cgroup 2>/dev/null && echo "mounted: rw"
                    true
                    """
                let r = box.run(["run", "--pids-limit", "50", "-m", "64m", "busybox", "sh", "-c", script])
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    r.stdout.contains("cgroups: / \n"), "the container does not see its cgroup as /\n\(r)")
                // The file is the container's own: its limit shows.
                #expect(r.stdout.contains(v2 ? "limit: 50\n" : "limit: \(64 << 20)\n"), "\(r)")
                #expect(
                    r.stdout.components(separatedBy: "Read-only file system").count == 3,
                    "Expected two EROFS\n\(r)")
                #expect(!r.stdout.contains("mounted: "), "\(r)")
            }
        }

        @Test(
            "a fork bomb under --pids-limit is contained: forks fail at the limit, and the container still exits",
            .tags(.concept)
        )
        func forkBombContained() throws {
            try withSandbox("step12", image: true) { box in
                // The bomb forks sleeps forever, until a fork fails and the shell gives up (ash exits 2).
                // Then PID 1 reads the count with builtins only: at the limit, it cannot fork either.
                let current =
                    Step09Tests.cgroupV2 ? "/sys/fs/cgroup/pids.current" : "/sys/fs/cgroup/pids/pids.current"
                let script = """
                    sh -c 'while :; do sleep 60 & done' 2>/dev/null
                    echo "bomb: $?"
                    read n < \(current); echo "pids: $n"
                    """
                let r = box.run(["run", "--pids-limit", "20", "busybox", "sh", "-c", script])
                #expect(r.exitCode == 0, "the container did not exit normally\n\(r)")
                #expect(r.stdout.hasPrefix("bomb: 2\n"), "the bomb did not fail to fork\n\(r)")
                let pids = r.stdout.split(separator: "\n").first { $0.hasPrefix("pids: ") }.flatMap {
                    Int($0.dropFirst(6))
                }
                #expect(pids != nil && pids! <= 20 && pids! >= 10, "Expected at most 20 processes\n\(r)")
            }
        }

        @Test(
            "-u: names come from the image, groups then gid then uid are set, and a non-root user has no capabilities",
            .tags(.concept),
            arguments: [
                // a name: its uid and gid from /etc/passwd, its groups from /etc/group
                ("app", "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"),
                // a uid with an entry: the same
                ("1000", "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"),
                // an explicit group replaces the primary one
                ("app:extra", "uid=1000(app) gid=2000(extra) groups=2000(extra)"),
                // a uid without an entry: gid 0, as in docker
                ("4242", "uid=4242 gid=0(root) groups=0(root)"),
                ("4242:4243", "uid=4242 gid=4243 groups=4243"),
            ])
        func user(spec: String, id: String) throws {
            try withSandbox("step12", image: true) { box in
                try Self.installHardImage(box)
                let script =
                    "id; grep -E '^(CapPrm|CapEff|CapInh|CapAmb):' /proc/self/status | tr '\\n' ' '; echo; cat /secret"
                let r = box.run(["run", "-u", spec, "hard", "sh", "-c", script])
                let lines = r.stdout.split(separator: "\n").map(String.init)
                #expect(lines.first == id, "Expected \(id.debugDescription)\n\(r)")
                let zero = String(repeating: "0", count: 16)
                #expect(
                    lines.count > 1
                        && lines[1] == "CapInh:\t\(zero) CapPrm:\t\(zero) CapEff:\t\(zero) CapAmb:\t\(zero) ",
                    "a non-root user keeps capabilities\n\(r)")
                #expect(
                    r.exitCode == 1 && r.stderr.contains("Permission denied"),
                    "a root-only file was read\n\(r)")
            }
        }

        @Test("-u 1000 cannot read root-only files; root in the same image can", .tags(.concept))
        func userCannotReadRootFiles() throws {
            try withSandbox("step12", image: true) { box in
                try Self.installHardImage(box)
                let user = box.run(["run", "-u", "1000", "hard", "cat", "/secret"])
                #expect(user.exitCode == 1 && user.stdout.isEmpty, "\(user)")
                #expect(user.stderr == "cat: can't open '/secret': Permission denied\n", "\(user)")
                let root = box.run(["run", "hard", "cat", "/secret"])
                #expect(root.exitCode == 0 && root.stdout == "root only\n", "\(root)")
            }
        }

        @Test(
            "bad input is refused before anything starts, with one line",
            arguments: [
                (
                    ["--cap-add", "FLY"],
                    "step12: unknown capability 'FLY' (names as in capabilities(7), e.g. NET_ADMIN)"
                ),
                (
                    ["--security-opt", "apparmor=x"],
                    "step12: unsupported security option 'apparmor=x' (this runtime knows seccomp=unconfined and no-new-privileges)"
                ),
                (["-u", "a:b:c"], "step12: invalid user 'a:b:c' (use UID, NAME, UID:GID or NAME:GROUP)"),
                (
                    ["--pids-limit", "many"],
                    "step12: invalid pids limit 'many' (use a number of processes, or -1 for no limit)"
                ),
                (["-u", "nosuch"], "step12: unable to find user nosuch: no matching entries in /etc/passwd"),
                // (uid_t)-1 is setresuid's "unchanged": taken as a uid, the command would stay root.
                (
                    ["-u", "4294967295"],
                    "step12: unable to find user 4294967295: no matching entries in /etc/passwd"
                ),
                (
                    ["--pids-limit", "+5"],
                    "step12: invalid pids limit '+5' (use a number of processes, or -1 for no limit)"
                ),
            ])
        func badInput(flags: [String], message: String) throws {
            try withSandbox("step12", image: true) { box in
                let r = box.run(["run"] + flags + ["busybox", "true"])
                expectOneLineError(r, exitCode: 125, reference: message)
            }
        }

        @Test(
            "exec gets the container's capabilities, user, no_new_privs and seccomp filter", .tags(.concept))
        func execIsHardenedToo() throws {
            try withSandbox("step12", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let start = box.run([
                    "run", "-d", "--name", name, "-u", "nobody", "--cap-drop", "KILL", "--security-opt",
                    "no-new-privileges", "busybox", "sleep", "1000",
                ])
                #expect(start.exitCode == 0, "\(start)")
                guard start.exitCode == 0 else { return }
                let fields = "^(Uid|Gid|Groups|CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp):"
                var pid1 = ""
                waitUntil {
                    pid1 = box.run(["exec", name, "sh", "-c", "grep -E '\(fields)' /proc/1/status"]).stdout
                    return pid1.contains("NoNewPrivs:\t1")
                }
                let exec = box.run([
                    "exec", name, "sh", "-c", "grep -E '\(fields)' /proc/self/status; unshare -U true",
                ])
                #expect(
                    exec.stdout == pid1 && pid1.contains("Seccomp:\t2"),
                    "Expected PID 1's \(pid1.debugDescription)\n\(exec)")
                #expect(exec.stdout.contains("Uid:\t65534\t"), "\(exec)")
                #expect(
                    exec.stderr.contains("Operation not permitted"), "exec's unshare was not refused\n\(exec)"
                )
                // And it sees its cgroup as / (the cgroup namespace).
                let cgroup = box.run(["exec", name, "sh", "-c", "cut -d: -f3 /proc/self/cgroup | sort -u"])
                #expect(cgroup.stdout == "/\n", "\(cgroup)")
            }
        }

        @Test("with -t, /dev/console is the container's terminal", .tags(.concept))
        func consoleIsTheTerminal() throws {
            try withSandbox("step12", image: true) { box in
                let marker = "console-\(Harness.random(in: 1000...9999))"
                let script =
                    "[ $(stat -c %t:%T /dev/console) = $(stat -L -c %t:%T /proc/self/fd/0) ] && echo \(marker) > /dev/console"
                let term = try Terminal(box, ["run", "-ti", "busybox", "sh", "-c", script])
                defer { term.close() }
                #expect(term.waitForExit() == 0, "\(term.screen)")
                #expect(term.screen.contains(marker), "\(term.screen)")
            }
        }

        @Test(
            "earlier guarantees still hold",
            arguments: [
                // step 02: exit codes pass through
                (["run", "busybox", "sh", "-c", "exit 7"], Int32(7), ""),
                // step 04: the command travels whole
                (["run", "busybox", "sh", "-c", "echo \"a  b\""], Int32(0), "a  b\n"),
                // step 08: a named container's hostname is its name
                (["run", "--name", "NAME", "busybox", "hostname"], Int32(0), "NAME\n"),
                // step 10: -e reaches the container
                (["run", "-e", "A=1 2", "busybox", "sh", "-c", "echo \"$A\""], Int32(0), "1 2\n"),
                // step 06: a volume is written through to the host
                (
                    ["run", "-v", "SCRATCH:/data", "busybox", "sh", "-c", "echo v > /data/f && cat /data/f"],
                    Int32(0), "v\n"
                ),
            ])
        func earlierGuarantees(arguments: [String], code: Int32, stdout: String) throws {
            try withSandbox("step12", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let fill = { (text: String) in
                    text.replacingOccurrences(of: "NAME", with: name).replacingOccurrences(
                        of: "SCRATCH", with: box.scratch + "/vol")
                }
                let r = box.run(arguments.map(fill))
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == fill(stdout), "Expected \(fill(stdout).debugDescription) as stdout\n\(r)")
            }
        }

        @Test("exec into a detached container still works, and ps lists it")
        func detachAndExec() throws {
            try withSandbox("step12", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let r = box.run(["run", "-d", "--name", name, "busybox", "sleep", "1000"])
                #expect(r.exitCode == 0, "\(r)")
                let exec = box.run(["exec", name, "hostname"])
                #expect(exec.exitCode == 0 && exec.stdout == name + "\n", "\(exec)")
                let ps = box.run(["ps"])
                #expect(ps.stdout.contains(name), "\(ps)")
            }
        }

        // MARK: helpers

        /// `CapBnd:\t00000000a80425fb` lines as a dictionary.
        static func capabilitySets(_ text: String) -> [String: String] {
            var sets: [String: String] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("Cap") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2 { sets[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
            }
            return sets
        }

        #if arch(x86_64)
            static let probesWork = true
        #else
            static let probesWork = false
        #endif

        /// images/hard.tar: busybox plus the probes, a user `app` (1000) in groups app (1000) and
        /// extra (2000), and /secret, readable by root only.
        static func installHardImage(_ box: Sandbox) throws {
            let dir = box.scratch + "/hard-image"
            let fm = FileManager.default
            try fm.createDirectory(atPath: dir + "/probe", withIntermediateDirectories: true)
            let unpack = runProcess(["/bin/tar", "-xf", try Harness.busyboxImage.get(), "-C", dir])
            #expect(unpack.exitCode == 0, "\(unpack)")
            try "root only\n".write(toFile: dir + "/secret", atomically: false, encoding: .utf8)
            chmod(dir + "/secret", 0o600)
            let passwd = try String(contentsOfFile: dir + "/etc/passwd", encoding: .utf8)
            try (passwd + "app:x:1000:1000:app:/home/app:/bin/sh\n").write(
                toFile: dir + "/etc/passwd", atomically: false, encoding: .utf8)
            let group = try String(contentsOfFile: dir + "/etc/group", encoding: .utf8)
            try (group + "app:x:1000:\nextra:x:2000:app\n").write(
                toFile: dir + "/etc/group", atomically: false, encoding: .utf8)
            for (name, probe) in probes {
                _ = fm.createFile(
                    atPath: dir + "/probe/" + name, contents: Data(probe),
                    attributes: [.posixPermissions: 0o755])
            }
            try fm.createDirectory(atPath: box.root + "/images", withIntermediateDirectories: true)
            let pack = runProcess(["/bin/tar", "-cf", box.root + "/images/hard.tar", "-C", dir, "."])
            #expect(pack.exitCode == 0, "\(pack)")
        }

        /// The probes: x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
        static let probes: [(String, [UInt8])] = [
            // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, create)
            ("keyctl", syscallProbe(250, [0, -4, 1])),
            // open_by_handle_at(AT_FDCWD, NULL, 0): EFAULT once the filter and the capability check let it through
            ("open_by_handle_at", syscallProbe(304, [-100, 0, 0])),
            // clone(CLONE_NEWUSER | SIGCHLD): a user namespace needs no capability, only the filter stops it
            ("clone-newuser", syscallProbe(56, [0x1000_0000 | 17, 0, 0, 0, 0])),
            // getpid through the x32 ABI (__X32_SYSCALL_BIT | 39)
            ("x32-getpid", syscallProbe(0x4000_0000 | 39, [])),
        ]

        /// A static x86_64 ELF program of 180 bytes: `syscall(nr, args...)`, then exit(errno), or
        /// exit(0) if the call succeeded (a child of clone exits 0 as well).
        static func syscallProbe(_ nr: Int64, _ arguments: [Int64]) -> [UInt8] {
            func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
                withUnsafeBytes(of: value.littleEndian) { Array($0) }
            }
            var code: [UInt8] = [0x48, 0xb8] + le(nr)  // mov rax, nr
            let registers: [[UInt8]] = [
                [0x48, 0xbf], [0x48, 0xbe], [0x48, 0xba], [0x49, 0xba], [0x49, 0xb8],
            ]
            for (register, value) in zip(
                registers, arguments + Array(repeating: 0, count: 5 - arguments.count))
            {
                code += register + le(value)  // mov rdi/rsi/rdx/r10/r8, value
            }
            code += [0x0f, 0x05]  // syscall
            // edi = rax < 0 ? -rax : 0 (xor edi, edi; test rax, rax; jns +4; mov edi, eax; neg edi)
            code += [0x31, 0xff, 0x48, 0x85, 0xc0, 0x79, 0x04, 0x89, 0xc7, 0xf7, 0xdf]
            code += [0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05]  // exit(edi)
            let size = UInt64(64 + 56 + code.count)
            var elf: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1] + Array(repeating: 0, count: 9)
            elf += le(UInt16(2)) + le(UInt16(0x3e)) + le(UInt32(1)) + le(UInt64(0x40_0078)) + le(UInt64(64))
            elf += le(UInt64(0)) + le(UInt32(0)) + le(UInt16(64)) + le(UInt16(56)) + le(UInt16(1))
            elf += le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0))
            elf +=
                le(UInt32(1)) + le(UInt32(5)) + le(UInt64(0)) + le(UInt64(0x40_0000)) + le(UInt64(0x40_0000))
            elf += le(size) + le(size) + le(UInt64(0x1000))
            return elf + code
        }
    }
}
