import Foundation
import Testing

extension Steps {
    /// Step 06: `run -v SRC:DST` (repeatable) checks every spec before anything is created, makes a
    /// missing host directory, and init bind-mounts (MS_BIND|MS_REC) each host directory onto its
    /// target inside the merged overlay, after making mounts private and before pivot_root, creating
    /// the target in the container's layer if the image lacks it. Kernel facts checked: a bind mount
    /// is the same directory, not a copy (a write on either side is seen on the other while the
    /// container runs); it exists only in the container's mount namespace, so it vanishes with the
    /// container and nothing stays mounted on the host; the host's files outlive the container and
    /// its layer, which is still removed. Steps 05-07 share `overlay/default`.
    @Suite("Step 06: volumes", .serialized, .timeLimit(.minutes(5)))
    struct Step06Tests {
        @Test(
            "files written under the container path are on the host after exit; the layer is gone, the host directory stays",
            .tags(.concept)
        )
        func volumeFilesOutliveTheContainer() throws {
            try withSandbox("step06", image: true) { box in
                let host = box.scratch + "/vol"
                let old = "old-\(Harness.random(in: 100_000...999_999))"
                let value = "new-\(Harness.random(in: 100_000...999_999))"
                let code = Int32(Harness.random(in: 1...120))
                try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
                try Self.write(old + "\n", to: host + "/old")
                // A failing command (random exit code) must not make the runtime take the volume
                // with it; the write to /root goes to the layer, which must go.
                let script = "echo \(value) > /data/new && echo layer > /root/in-layer && exit \(code)"
                let r = box.run(["run", "-v", "\(host):/data", "sh", "-c", script])
                #expect(r.exitCode == code, "\(r)")
                #expect(
                    Self.read(host + "/new") == value + "\n", "the container's file is not on the host\n\(r)")
                #expect(Self.read(host + "/old") == old + "\n", "a file the host had before changed\n\(r)")
                let names = (try? FileManager.default.contentsOfDirectory(atPath: host).sorted()) ?? []
                #expect(names == ["new", "old"], "Expected exactly [new, old] in \(host)\n\(r)")
                let workspace = box.root + "/overlay/default"
                #expect(
                    !FileManager.default.fileExists(atPath: workspace),
                    "\(workspace) is left after exit\n\(r)")
                #expect(Self.mounts(under: box.base).isEmpty, "\(Self.mounts(under: box.base))\n\(r)")
            }
        }

        /// A way of giving volumes, each checked inside the container and on the host afterwards.
        enum Setup: String, CustomTestStringConvertible, Sendable {
            case existingHostFile, twoVolumes, missingHostDirectory, missingContainerPath
            var testDescription: String { rawValue }
        }

        @Test(
            "volumes work however they are given", .tags(.concept),
            arguments: [
                // a file the host wrote before the run is readable inside
                Setup.existingHostFile,
                // two -v at once: each target shows its own host directory
                .twoVolumes,
                // a host directory that does not exist (two levels) is created, as docker does
                .missingHostDirectory,
                // a container path the image lacks (/data/deep/x) is created in the layer and mounted on
                .missingContainerPath,
            ])
        func volumeSetups(_ setup: Setup) throws {
            try withSandbox("step06", image: true) { box in
                let fm = FileManager.default
                let a = box.scratch + "/a"
                let b = box.scratch + "/b"
                let x = "x-\(Harness.random(in: 100_000...999_999))"
                let y = "y-\(Harness.random(in: 100_000...999_999))"
                var arguments: [String]
                var stdout = ""
                var onHost: [(path: String, content: String)] = []
                switch setup {
                case .existingHostFile:
                    try fm.createDirectory(atPath: a, withIntermediateDirectories: true)
                    try Self.write(x + "\n", to: a + "/seen")
                    arguments = ["-v", "\(a):/data", "cat", "/data/seen"]
                    stdout = x + "\n"
                    onHost = [(a + "/seen", x + "\n")]
                case .twoVolumes:
                    arguments = [
                        "-v", "\(a):/one", "-v", "\(b):/two", "sh", "-c",
                        "echo \(x) > /one/x && echo \(y) > /two/y && ls /one /two",
                    ]
                    stdout = "/one:\nx\n\n/two:\ny\n"
                    onHost = [(a + "/x", x + "\n"), (b + "/y", y + "\n")]
                case .missingHostDirectory:
                    let deep = a + "/missing/deeper"
                    arguments = ["-v", "\(deep):/data", "sh", "-c", "echo \(x) > /data/f"]
                    onHost = [(deep + "/f", x + "\n")]
                case .missingContainerPath:
                    // Field 5 of mountinfo is the mount point: exactly one mount sits on /data/deep/x.
                    arguments = [
                        "-v", "\(a):/data/deep/x", "sh", "-c",
                        "echo \(x) > /data/deep/x/f && cut -d' ' -f5 /proc/self/mountinfo | grep -c '^/data/deep/x$'",
                    ]
                    stdout = "1\n"
                    onHost = [(a + "/f", x + "\n")]
                }
                let r = box.run(["run"] + arguments)
                #expect(r.exitCode == 0, "\(r)")
                #expect(r.stdout == stdout, "Expected \(stdout.debugDescription) as stdout\n\(r)")
                for (path, content) in onHost {
                    #expect(
                        Self.read(path) == content, "Expected \(content.debugDescription) in \(path)\n\(r)")
                }
                #expect(!fm.fileExists(atPath: box.root + "/overlay/default"), "the layer is left\n\(r)")
            }
        }

        @Test(
            "the volume is the host directory itself, not a copy: each side sees the other's writes while it runs",
            .tags(.concept)
        )
        func volumeIsLive() throws {
            try withSandbox("step06", image: true) { box in
                let host = box.scratch + "/live"
                let value = "live-\(Harness.random(in: 100_000...999_999))"
                // The container announces itself through the volume, then waits (bounded, 10 s) for
                // the host's file. A copy made at start-up would never see it, and the host would
                // never see `ready`.
                let script =
                    "echo ready > /data/ready; i=0; "
                    + "while [ ! -e /data/from-host ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; "
                    + "cat /data/from-host"
                let running = box.start(["run", "-v", "\(host):/data", "sh", "-c", script])
                let announced = waitUntil { Self.read(host + "/ready") == "ready\n" }
                #expect(announced, "the container's write never reached \(host)/ready")
                // Written aside and renamed into place: the container never reads a half-written file.
                try Data((value + "\n").utf8).write(
                    to: URL(fileURLWithPath: host + "/from-host"), options: .atomic)
                let r = running.finish()
                #expect(r.exitCode == 0, "\(r)")
                #expect(
                    r.stdout == value + "\n", "Expected the host's \(value.debugDescription) inside\n\(r)")
            }
        }

        @Test(
            "a bad -v is one line on stderr and exit 125, and nothing is created",
            arguments: [
                // no colon: nothing says where it goes
                (["HOST"], "step06: invalid volume 'HOST': use -v /host/dir:/container/dir"),
                // a relative host path would depend on where the runtime was started
                (
                    ["relative-vol:/data"],
                    "step06: invalid volume 'relative-vol:/data': host path 'relative-vol' must be absolute"
                ),
                // a relative container path has nothing to be relative to
                (["HOST:data"], "step06: invalid volume 'HOST:data': container path 'data' must be absolute"),
                // covering the container's whole root is not a volume
                (["HOST:/"], "step06: invalid volume 'HOST:/': container path '/' cannot be the root"),
                // .. could walk the target out of the container's root
                (
                    ["HOST:/data/../../etc"],
                    "step06: invalid volume 'HOST:/data/../../etc': container path '/data/../../etc' must not contain '..'"
                ),
                // a bind mount of a file onto a directory: refused before the mount could fail
                (["FILE:/data"], "step06: invalid volume 'FILE:/data': host path 'FILE' is not a directory"),
                // docker's options (:ro) are not supported: three parts
                (
                    ["HOST:/data:ro"],
                    "step06: invalid volume 'HOST:/data:ro': use -v /host/dir:/container/dir"
                ),
                // a good volume before a bad one: every spec is checked before any host directory is made
                (
                    ["OTHER:/ok", "HOST:/"],
                    "step06: invalid volume 'HOST:/': container path '/' cannot be the root"
                ),
            ])
        func badVolume(specs: [String], message: String) throws {
            try withSandbox("step06", image: true) { box in
                let fm = FileManager.default
                let places = [
                    "HOST": box.scratch + "/vol", "OTHER": box.scratch + "/other",
                    "FILE": box.scratch + "/file",
                ]
                try Self.write("a file\n", to: places["FILE"]!)
                let fill = { (text: String) in
                    places.reduce(text) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
                }
                let r = box.run(["run"] + specs.flatMap { ["-v", fill($0)] } + ["true"])
                let expected = fill(message)
                #expect(r.exitCode == 125, "\(r)")
                expectOneLineError(r, reference: expected)
                for path in [places["HOST"]!, places["OTHER"]!, fm.currentDirectoryPath + "/relative-vol"] {
                    #expect(!fm.fileExists(atPath: path), "a rejected run created \(path)\n\(r)")
                }
                let inRoot = try fm.contentsOfDirectory(atPath: box.root)
                #expect(inRoot == ["images"], "a rejected run created \(inRoot) under \(box.root)\n\(r)")
                #expect(try fm.contentsOfDirectory(atPath: box.root + "/images") == ["busybox.tar"], "\(r)")
            }
        }

        @Test(
            "a container path that is a file in the image fails in init with one line; the layer is still removed"
        )
        func targetIsAFileInTheImage() throws {
            try withSandbox("step06", image: true) { box in
                let host = box.scratch + "/vol"
                let r = box.run(["run", "-v", "\(host):/etc/passwd", "echo", "should-not-run"])
                let message = "step06: volume target /etc/passwd: /etc/passwd is not a directory"
                #expect(r.exitCode == 125 && r.stdout.isEmpty, "\(r)")
                expectOneLineError(r, reference: message)
                #expect(!FileManager.default.fileExists(atPath: box.root + "/overlay/default"), "\(r)")
                // The spec itself was fine, so the host directory was made first; it is never deleted.
                #expect(FileManager.default.fileExists(atPath: host), "\(r)")
                #expect(Self.mounts(under: box.base).isEmpty, "\(Self.mounts(under: box.base))\n\(r)")
            }
        }

        @Test("step05, the previous step, has no -v: the same command is an unknown flag there")
        func previousStepHasNoVolumes() throws {
            try withSandbox("step06", image: true) { box in
                let host = box.scratch + "/vol"
                let value = "v-\(Harness.random(in: 100_000...999_999))"
                let command = ["run", "-v", "\(host):/data", "sh", "-c", "echo \(value) > /data/f"]
                let old = box.run(step: "step05", command)
                let message = "step05: unknown flag '-v' (see step05 run --help)"
                #expect(old.exitCode == 125, "\(old)")
                #expect(
                    old.stderrLines == [Substring(message)], "Expected \(message.debugDescription)\n\(old)")
                #expect(!FileManager.default.fileExists(atPath: host), "step05 created \(host)\n\(old)")
                let now = box.run(command)
                #expect(now.exitCode == 0 && Self.read(host + "/f") == value + "\n", "\(now)")
            }
        }

        /// A guarantee of an earlier step, checked through step06's binary.
        enum Guarantee: String, CustomTestStringConvertible, Sendable {
            case pid1, exitCode, argumentsSurvive, hostUnreachable, writesVanish, memoryLimit
            var testDescription: String { rawValue }
        }

        @Test(
            "earlier guarantees still hold",
            arguments: [
                // step02: the command is PID 1 of its own PID namespace
                Guarantee.pid1,
                // step02: exit N from the command is the runtime's exit code (N random)
                .exitCode,
                // step04: arguments with spaces, quotes and empty strings arrive unchanged
                .argumentsSurvive,
                // step05: a host-only file is unreachable, also with a volume mounted
                .hostUnreachable,
                // step05: a write outside the volume is gone in the next run
                .writesVanish,
                // step03: -m limits the command's memory (random size below 200 MB): dd's 200 MB
                // buffer is OOM-killed
                .memoryLimit,
            ])
        func earlierGuarantees(_ guarantee: Guarantee) throws {
            try withSandbox("step06", image: true) { box in
                var arguments: [String]
                var stdout = ""
                var code: Int32 = 0
                switch guarantee {
                case .pid1:
                    arguments = ["sh", "-c", "echo $$"]
                    stdout = "1\n"
                case .exitCode:
                    code = Int32(Harness.random(in: 1...120))
                    arguments = ["sh", "-c", "exit \(code)"]
                case .argumentsSurvive:
                    arguments = ["printf", "[%s]", "a  b", "", "it's \"q\""]
                    stdout = "[a  b][][it's \"q\"]"
                case .hostUnreachable:
                    let marker = box.scratch + "/host-only"
                    try Self.write("host\n", to: marker)
                    let script = "if [ -e \"$1\" ]; then echo reachable; else echo unreachable; fi"
                    arguments = ["-v", "\(box.scratch)/vol:/data", "sh", "-c", script, "sh", marker]
                    stdout = "unreachable\n"
                case .writesVanish:
                    let first = box.run(["run", "sh", "-c", "echo note > /root/note"])
                    #expect(first.exitCode == 0, "\(first)")
                    arguments = ["sh", "-c", "[ -e /root/note ] && echo kept || echo gone"]
                    stdout = "gone\n"
                case .memoryLimit:
                    // The container's /sys has no cgroup files to read, so the limit shows by its
                    // effect: a 200 MB buffer under a smaller -m is OOM-killed (128 + SIGKILL).
                    let mebibytes = Harness.random(in: 16...100)
                    arguments = [
                        "-m", "\(mebibytes)m", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1",
                    ]
                    code = 137
                }
                let r = box.run(["run"] + arguments)
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == stdout, "Expected \(stdout.debugDescription) as stdout\n\(r)")
                #expect(code == 137 || r.stderr.isEmpty, "\(r)")
            }
        }

        // MARK: helpers

        static func write(_ text: String, to path: String) throws {
            try text.write(toFile: path, atomically: false, encoding: .utf8)
        }

        static func read(_ path: String) -> String? {
            try? String(contentsOfFile: path, encoding: .utf8)
        }

        /// Mount points in the host's mount namespace below `directory`.
        static func mounts(under directory: String) -> [String] {
            MachineState.readMounts().values.map(\.point).filter { $0.hasPrefix(directory + "/") }.sorted()
        }
    }
}
