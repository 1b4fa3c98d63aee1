import Foundation
import Testing

extension Steps {
    /// Step 07: `run IMAGE CMD` unpacks `images/IMAGE.tar` once into `images/IMAGE/`, the overlay's
    /// lower layer; `commit [-f] IMAGE`, typed while the one container runs, tars that container's
    /// merged view, read through the overlay mounted on the host, into a temporary file and renames
    /// it to `images/IMAGE.tar`, then drops the stale unpacked copy. Facts checked: the new image
    /// has the container's writes and the image it started from is unchanged; the tar holds only what
    /// the host's mount namespace sees at `merged` (no /proc entries, no /dev nodes, no volume
    /// contents, which live in the container's own mount namespace); an image that is some running
    /// overlay's lower layer is never replaced; names are file names under images/, so `/`, `..` and
    /// uppercase are refused. Steps 05-07 share `overlay/default`.
    @Suite("Step 07: images and commit", .serialized, .timeLimit(.minutes(5)))
    struct Step07Tests {
        @Test(
            "a file made in a running container is in the committed image; busybox is unchanged",
            .tags(.concept))
        func commitKeepsTheContainersFiles() throws {
            try withSandbox("step07", image: true) { box in
                let busybox = box.root + "/images/busybox.tar"
                let before = try Data(contentsOf: URL(fileURLWithPath: busybox))
                let name = "img-\(Harness.random(in: 1000...9999))"
                let value = "v-\(Harness.random(in: 100_000...999_999))"
                let running = Self.startHolding(box, image: "busybox", "echo \(value) > /root/f")
                #expect(waitUntil { running.stdoutSoFar == "ready\n" }, "the container never got ready")

                let c = box.run(["commit", name])
                let tarball = box.root + "/images/\(name).tar"
                #expect(c.exitCode == 0 && c.stderr.isEmpty, "\(c)")
                #expect(c.stdout == tarball + "\n", "Expected the tarball's path as stdout\n\(c)")
                let r0 = Self.stop(box, running)
                #expect(r0.exitCode == 0, "\(r0)")

                let r = box.run(["run", name, "cat", "/root/f"])
                #expect(
                    r.exitCode == 0 && r.stdout == value + "\n", "Expected \(value) from the new image\n\(r)")
                let images =
                    (try? FileManager.default.contentsOfDirectory(atPath: box.root + "/images")) ?? []
                #expect(
                    images.filter { !$0.hasSuffix(".lock") }.sorted() == [
                        "busybox", "busybox.tar", name, name + ".tar",
                    ],
                    "\(images)")

                // The image the container started from: the same bytes, and no /root/f in it.
                let after = try Data(contentsOf: URL(fileURLWithPath: busybox))
                #expect(after == before, "\(busybox) changed (\(before.count) bytes, now \(after.count))")
                #expect(!FileManager.default.fileExists(atPath: box.root + "/images/busybox/root/f"))
                let old = box.run(["run", "busybox", "cat", "/root/f"])
                #expect(old.exitCode == 1, "\(old)")
                #expect(old.stderrLines == ["cat: can't open '/root/f': No such file or directory"], "\(old)")
            }
        }

        @Test(
            "the image is the merged view seen from the host: no /proc entries, /dev nodes or volume files",
            .tags(.concept))
        func commitSeesOnlyTheLayers() throws {
            try withSandbox("step07", image: true) { box in
                let volume = box.scratch + "/vol"
                let name = "img-\(Harness.random(in: 1000...9999))"
                let setup = "echo secret > /data/secret && echo mine > /root/mine"
                let running = Self.startHolding(
                    box, image: "busybox", setup, flags: ["-v", "\(volume):/data"])
                #expect(waitUntil { running.stdoutSoFar == "ready\n" }, "the container never got ready")
                let c = box.run(["commit", name])
                #expect(c.exitCode == 0, "\(c)")
                let r = Self.stop(box, running)
                #expect(r.exitCode == 0, "\(r)")

                let list = runProcess(["/usr/bin/env", "tar", "-tf", box.root + "/images/\(name).tar"])
                let entries = Set(list.stdout.split(separator: "\n").map(String.init))
                #expect(entries.contains("./root/mine"), "the container's file is missing\n\(list)")
                // The volume's mount point was made in the layer, so the directory is there; the
                // bind mount on it exists only in the container's mount namespace, so its files are not.
                #expect(entries.contains("./data/"), "\(list)")
                #expect(!entries.contains("./data/secret"), "the volume's file went into the image\n\(list)")
                #expect(Self.read(volume + "/secret") == "secret\n", "the volume lost its file")
                let leaked = entries.filter {
                    ($0.hasPrefix("./proc/") && $0 != "./proc/") || ($0.hasPrefix("./dev/") && $0 != "./dev/")
                        || $0.hasPrefix("./.pivot_root")
                }
                #expect(leaked.isEmpty, "container-only mounts leaked into the image: \(leaked.sorted())")
            }
        }

        @Test(
            "an existing image is refused without -f; -f replaces it and the next run sees the new files",
            .tags(.concept)
        )
        func existingImageNeedsForce() throws {
            try withSandbox("step07", image: true) { box in
                let name = "img-\(Harness.random(in: 1000...9999))"
                let tarball = box.root + "/images/\(name).tar"
                let first = "first-\(Harness.random(in: 100_000...999_999))"
                let second = "second-\(Harness.random(in: 100_000...999_999))"

                var running = Self.startHolding(box, image: "busybox", "echo \(first) > /root/f")
                #expect(waitUntil { running.stdoutSoFar == "ready\n" }, "the first container never got ready")
                let c1 = box.run(["commit", name])
                #expect(c1.exitCode == 0, "\(c1)")
                _ = Self.stop(box, running)
                // Unpacks images/NAME/: the copy that -f must drop, or the next run would reuse it.
                let r1 = box.run(["run", name, "cat", "/root/f"])
                #expect(r1.stdout == first + "\n", "\(r1)")

                running = Self.startHolding(box, image: "busybox", "echo \(second) > /root/f")
                #expect(
                    waitUntil { running.stdoutSoFar == "ready\n" }, "the second container never got ready")
                let bytes = try Data(contentsOf: URL(fileURLWithPath: tarball))
                let refused = box.run(["commit", name])
                let message = "step07: image '\(name)' already exists (use -f to replace it)"
                #expect(refused.exitCode == 125 && refused.stdout.isEmpty, "\(refused)")
                expectOneLineError(refused, reference: message)
                #expect(
                    try Data(contentsOf: URL(fileURLWithPath: tarball)) == bytes, "the refused commit wrote")
                let forced = box.run(["commit", "-f", name])
                #expect(forced.exitCode == 0 && forced.stdout == tarball + "\n", "\(forced)")
                _ = Self.stop(box, running)

                let r2 = box.run(["run", name, "cat", "/root/f"])
                #expect(r2.stdout == second + "\n", "Expected the replaced image's file\n\(r2)")
                let leftovers =
                    ((try? FileManager.default.contentsOfDirectory(atPath: box.root + "/images")) ?? [])
                    .filter { ($0.hasPrefix(".") && !$0.hasSuffix(".lock")) || $0.contains(".partial.") }
                #expect(leftovers.isEmpty, "temporary files left in images/: \(leftovers)")

                // Nothing runs now: the lock file is there, but nobody holds it.
                let idle = box.run(["commit", name + "-later"])
                let idleMessage =
                    "step07: no running container to commit (start one with: step07 run -ti busybox sh)"
                expectOneLineError(idle, exitCode: 125, reference: idleMessage)
            }
        }

        @Test(
            "commit -f of the image a running container uses as its lower layer is refused; so is a second run",
            .tags(.concept)
        )
        func lowerLayerInUseIsNotReplaced() throws {
            try withSandbox("step07", image: true) { box in
                let name = "base-\(Harness.random(in: 1000...9999))"
                let tarball = box.root + "/images/\(name).tar"
                try FileManager.default.copyItem(atPath: box.root + "/images/busybox.tar", toPath: tarball)
                let bytes = try Data(contentsOf: URL(fileURLWithPath: tarball))
                let running = Self.startHolding(box, image: name, "echo changed > /root/f")
                #expect(waitUntil { running.stdoutSoFar == "ready\n" }, "the container never got ready")

                let c = box.run(["commit", "-f", name])
                let message =
                    "step07: image '\(name)' is in use by a running container (stop it before replacing it)"
                #expect(c.exitCode == 125 && c.stdout.isEmpty, "\(c)")
                expectOneLineError(c, reference: message)
                #expect(
                    try Data(contentsOf: URL(fileURLWithPath: tarball)) == bytes, "\(tarball) was replaced")
                let lower = box.root + "/images/\(name)/bin/busybox"
                #expect(FileManager.default.fileExists(atPath: lower), "the live lower layer was removed")

                // Steps 05-07 run one container at a time (step05's guarantee).
                let second = box.run(["run", "busybox", "true"])
                let busy =
                    "step07: another container is running in \(box.root)/overlay/default (this step runs one at a time)"
                expectOneLineError(second, exitCode: 125, reference: busy)
                let r = Self.stop(box, running)
                #expect(r.exitCode == 0, "the container was disturbed\n\(r)")
            }
        }

        @Test(
            "bad commit or run input is one line on stderr and exit 125, and nothing is created",
            arguments: [
                // commit with no container running
                (
                    ["commit", "img"],
                    "step07: no running container to commit (start one with: step07 run -ti busybox sh)"
                ),
                // an image name is a file name under images/: no `/`
                (
                    ["commit", "a/b"],
                    "step07: invalid image name 'a/b' (lowercase letters, digits, '_', '.', '-'; no '/')"
                ),
                // .. would name images/'s parent
                (
                    ["commit", ".."],
                    "step07: invalid image name '..' (lowercase letters, digits, '_', '.', '-'; no '/')"
                ),
                // uppercase, as docker refuses it in repository names
                (
                    ["commit", "Img"],
                    "step07: invalid image name 'Img' (lowercase letters, digits, '_', '.', '-'; no '/')"
                ),
                // commit without a name
                (["commit"], "step07: commit needs exactly one image name (try: step07 commit myimage)"),
                // commit with two names
                (
                    ["commit", "a", "b"],
                    "step07: commit needs exactly one image name (try: step07 commit myimage)"
                ),
                // run of an image that was never built or committed
                (
                    ["run", "nosuch", "true"],
                    "step07: rootfs image 'nosuch' not found under ROOT/images (import a tarball with: sudo rootfs-tools/import-image.sh nosuch FILE.tar)"
                ),
                // run of an image name that walks out of images/
                (
                    ["run", "../busybox", "true"],
                    "step07: invalid image name '../busybox' (lowercase letters, digits, '_', '.', '-'; no '/')"
                ),
                // run with an image and no command: step 06's `run busybox` would have run busybox
                (
                    ["run", "busybox"],
                    "step07: run needs an image and a command (try: step07 run -ti busybox sh)"
                ),
                // run with nothing at all
                (["run"], "step07: run needs an image and a command (try: step07 run -ti busybox sh)"),
            ])
        func badInput(arguments: [String], message: String) throws {
            try withSandbox("step07", image: true) { box in
                let r = box.run(arguments)
                let expected = message.replacingOccurrences(of: "ROOT", with: box.root)
                #expect(r.exitCode == 125 && r.stdout.isEmpty, "\(r)")
                expectOneLineError(r, reference: expected)
                let fm = FileManager.default
                let inRoot = try fm.contentsOfDirectory(atPath: box.root)
                let inImages = try fm.contentsOfDirectory(atPath: box.root + "/images")
                #expect(inRoot == ["images"], "a rejected command created \(inRoot) under \(box.root)\n\(r)")
                #expect(
                    inImages == ["busybox.tar"], "a rejected command created \(inImages) in images/\n\(r)")
            }
        }

        @Test("step06, the previous step, has no commit: it is an unknown command there")
        func previousStepHasNoCommit() throws {
            try withSandbox("step07", image: true) { box in
                let old = box.run(step: "step06", ["commit", "img"])
                let message = "step06: unknown command 'commit' (try: step06 --help)"
                expectOneLineError(old, exitCode: 125, reference: message)
                // step06 always runs busybox and takes no image: `busybox` is the command there.
                let noImage = box.run(step: "step06", ["run", "busybox", "echo", "no-image"])
                #expect(noImage.exitCode == 0 && noImage.stdout == "no-image\n", "\(noImage)")
                let now = box.run(["run", "busybox", "echo", "image"])
                #expect(now.exitCode == 0 && now.stdout == "image\n", "\(now)")
            }
        }

        @Test(
            "a symlink in an image cannot send a volume's target outside the container's root")
        func volumeTargetStaysInTheRoot() throws {
            try withSandbox("step07", image: true) { box in
                // A container makes a symlink to a host path, and the image keeps it. A later run
                // asks for a volume below the symlink: resolved before pivot_root, it would point
                // into the host's tree, so the runtime refuses it.
                let outside = box.scratch + "/outside"
                try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
                let name = "linked-\(Harness.random(in: 1000...9999))"
                let running = Self.startHolding(box, image: "busybox", "ln -s \(outside) /root/link")
                #expect(waitUntil { running.stdoutSoFar == "ready\n" }, "the container never got ready")
                let c = box.run(["commit", name])
                #expect(c.exitCode == 0, "\(c)")
                _ = Self.stop(box, running)

                let r = box.run([
                    "run", "-v", "\(box.scratch)/vol:/root/link/made", name, "sh", "-c",
                    "echo inside > /root/link/made/f && echo written",
                ])
                #expect(
                    !FileManager.default.fileExists(atPath: outside + "/made"),
                    "the runtime made \(outside)/made on the host\n\(r)")
                let message = "step07: volume target /root/link/made: /root/link is a symlink in the image"
                expectOneLineError(r, exitCode: 125, reference: message)
            }
        }

        /// A guarantee of an earlier step, checked through step07's binary.
        enum Guarantee: String, CustomTestStringConvertible, Sendable {
            case pid1, exitCode, hostUnreachable, writesVanish, volume
            var testDescription: String { rawValue }
        }

        @Test(
            "earlier guarantees still hold",
            arguments: [
                // step02: the command is PID 1 of its own PID namespace
                Guarantee.pid1,
                // step02: exit N from the command is the runtime's exit code (N random)
                .exitCode,
                // step05: a host-only file is unreachable from the container
                .hostUnreachable,
                // step05: a write is gone in the next run
                .writesVanish,
                // step06: a file written in a volume is on the host after exit (random content)
                .volume,
            ])
        func earlierGuarantees(_ guarantee: Guarantee) throws {
            try withSandbox("step07", image: true) { box in
                var arguments: [String]
                var stdout = ""
                var code: Int32 = 0
                switch guarantee {
                case .pid1:
                    arguments = ["busybox", "sh", "-c", "echo $$"]
                    stdout = "1\n"
                case .exitCode:
                    code = Int32(Harness.random(in: 1...120))
                    arguments = ["busybox", "sh", "-c", "exit \(code)"]
                case .hostUnreachable:
                    let marker = box.scratch + "/host-only"
                    try "host\n".write(toFile: marker, atomically: false, encoding: .utf8)
                    let script = "if [ -e \"$1\" ]; then echo reachable; else echo unreachable; fi"
                    arguments = ["busybox", "sh", "-c", script, "sh", marker]
                    stdout = "unreachable\n"
                case .writesVanish:
                    let first = box.run(["run", "busybox", "sh", "-c", "echo note > /root/note"])
                    #expect(first.exitCode == 0, "\(first)")
                    arguments = ["busybox", "sh", "-c", "[ -e /root/note ] && echo kept || echo gone"]
                    stdout = "gone\n"
                case .volume:
                    let value = "v-\(Harness.random(in: 100_000...999_999))"
                    arguments = [
                        "-v", "\(box.scratch)/vol:/data", "busybox", "sh", "-c", "echo \(value) > /data/f",
                    ]
                    let r = box.run(["run"] + arguments)
                    #expect(Self.read(box.scratch + "/vol/f") == value + "\n", "\(r)")
                    arguments = ["busybox", "cat", "/data/f"]
                    // The next container has no volume: /data was in the last one's layer only.
                    code = 1
                }
                let r = box.run(["run"] + arguments)
                #expect(r.exitCode == code, "\(r)")
                #expect(r.stdout == stdout, "Expected \(stdout.debugDescription) as stdout\n\(r)")
            }
        }

        // MARK: helpers

        /// Starts `run FLAGS IMAGE sh -c SETUP; echo ready; wait` in the background. The container
        /// waits (at most 20 s) for /tmp/stop, which `stop` creates from the host through the merged
        /// view.
        static func startHolding(_ box: Sandbox, image: String, _ setup: String, flags: [String] = [])
            -> Spawned
        {
            let script =
                "\(setup) && echo ready; i=0; "
                + "while [ ! -e /tmp/stop ] && [ $i -lt 1000 ]; do sleep 0.02; i=$((i+1)); done"
            return box.start(["run"] + flags + [image, "sh", "-c", script])
        }

        /// Lets a container from `startHolding` exit, and waits for it.
        static func stop(_ box: Sandbox, _ running: Spawned) -> RunResult {
            _ = FileManager.default.createFile(
                atPath: box.root + "/overlay/default/merged/tmp/stop", contents: nil)
            return running.finish()
        }

        static func read(_ path: String) -> String? {
            try? String(contentsOfFile: path, encoding: .utf8)
        }
    }
}
