import Foundation
import Testing

extension Steps {
    /// Images on a machine that many people share. Kernel and filesystem facts checked:
    /// rename(2) replaces a name atomically, so an image replaced one rename at a time is the old one
    /// or the new one wherever the replacement is killed; flock(2) locks die with their holder; and
    /// a walk by path follows a symlink that a container swapped in for a directory of its layer,
    /// while unlinkat(2) relative to a descriptor opened with O_NOFOLLOW removes only the symlink.
    @Suite("Images: one name rule, atomic replacement, removal by descriptor", .timeLimit(.minutes(5)))
    struct ImageSafetyTests {
        static let importScript = Harness.packageRoot.appendingPathComponent("rootfs-tools/import-image.sh")
            .path

        /// The import script is a host tool: the VM check's initramfs has neither it nor bash, and
        /// runs the runtime's half of these tests only.
        static let canImport =
            FileManager.default.isExecutableFile(atPath: "/bin/bash")
            && FileManager.default.fileExists(atPath: importScript)
        static let importReason: Comment = "needs bash and rootfs-tools/import-image.sh (a host tool)"

        /// Names that the runtime and import-image.sh must both refuse.
        static let refusedNames = [
            // its unpacked tree, images/busybox.tar, would be image busybox's tarball
            "busybox.tar",
            "img.tar",
            // hidden: the lock files and every temporary name start with '.'
            ".busybox.lock",
            ".img.removing.1",
            // an option to tar, rm and mv
            "-rf",
            // upper case, which import-image.sh used to accept
            "Busybox",
            // outside images/, or images/ itself
            "a/b", "..", ".",
            "",
            "a b", "a\tb", "é",
            String(repeating: "a", count: 129),
        ]

        /// Names that both must accept.
        static let acceptedNames = [
            "img", "img.tar.gz", "tar", "v1.2_x-y", "0", String(repeating: "a", count: 128),
        ]

        @Test(
            "the runtime and import-image.sh accept and refuse the same image names, and a refused name touches no image",
            .enabled(if: canImport, importReason), arguments: ["step08", "step10"])
        func oneNameRule(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                let container = box.newName()
                let started = box.run(["run", "-d", "--name", container, "busybox", "true"])
                try #require(started.exitCode == 0, "\(started)")
                let busybox = box.root + "/images/busybox.tar"
                let original = try Data(contentsOf: URL(fileURLWithPath: busybox))
                for (name, accepted) in Self.refusedNames.map({ ($0, false) })
                    + Self.acceptedNames.map({ ($0, true) })
                {
                    let commit = box.run(["commit", container, name])
                    let imported = importImage(box, name, from: busybox)
                    #expect(
                        (commit.exitCode == 0) == (imported.exitCode == 0),
                        "the runtime and import-image.sh disagree on '\(name)'\n\(commit)\n\(imported)")
                    if accepted {
                        #expect(commit.exitCode == 0, "\(commit)")
                        #expect(imported.exitCode == 0, "\(imported)")
                        continue
                    }
                    #expect(
                        commit.exitCode == 125 && commit.stderrLines.count == 1
                            && commit.stderr.hasPrefix("\(step): invalid image name '\(name)' ("),
                        "\(commit)")
                    #expect(
                        imported.exitCode == 1 && imported.stderrLines.count == 1
                            && imported.stderr.hasPrefix("import-image: invalid image name '\(name)' ("),
                        "\(imported)")
                    // The same rule, so the same reason.
                    #expect(
                        commit.stderr.dropFirst(step.count + 2)
                            == imported.stderr.dropFirst("import-image: ".count),
                        "\(commit)\n\(imported)")
                }
                let now = try? Data(contentsOf: URL(fileURLWithPath: busybox))
                #expect(now == original, "images/busybox.tar was changed or removed")
                let run = box.run(["run", "busybox", "true"])
                #expect(run.exitCode == 0, "\(run)")
            }
        }

        @Test(
            "run refuses an image name ending in .tar with one line",
            arguments: ["step07", "step08", "step09", "step10"])
        func runRefusesTarNames(step: String) throws {
            try withSandbox(step, image: true) { box in
                let r = box.run(["run", "busybox.tar", "true"])
                #expect(
                    r.exitCode == 125 && r.stderrLines.count == 1
                        && r.stderr
                            == "\(step): invalid image name 'busybox.tar' (a name may not end in '.tar': images/busybox.tar is the tarball of image 'busybox')\n",
                    "\(r)")
            }
        }

        /// The marks of a replacement (commit -f and import-image.sh have the same), and the image
        /// the next run must see when the replacement is killed there.
        static let replacementStages = [
            // locked and checked; nothing renamed yet: the old image
            ("image-locked", "old"),
            // the old tree moved aside, the old tarball still in place: the old image, unpacked afresh
            ("image-old-moved", "old"),
            // the new tarball in place, the old tree not yet deleted: the new image
            ("image-new-placed", "new"),
        ]

        @Test(
            "a commit -f killed at any point of the replacement leaves the next run a whole image, old or new",
            arguments: replacementStages)
        func killedCommit(mark: String, expected: String) throws {
            try checkKilledReplacement(tool: "commit", mark: mark, expected: expected)
        }

        @Test(
            "an import killed at any point of the replacement leaves the next run a whole image, old or new",
            .enabled(if: canImport, importReason), arguments: replacementStages)
        func killedImport(mark: String, expected: String) throws {
            try checkKilledReplacement(tool: "import", mark: mark, expected: expected)
        }

        func checkKilledReplacement(tool: String, mark: String, expected: String) throws {
            let stage = (mark: mark, expected: expected)
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let newer = try makeImages(box)
                let pause = ["MYDOCKER_TEST_PAUSE_AT": stage.mark, "MYDOCKER_ROOT": box.root]
                let replacing =
                    tool == "commit"
                    ? box.start(["commit", "-f", newer, "img"], environment: pause)
                    : Spawned(
                        ["/bin/bash", Self.importScript, "img", box.root + "/images/newer.tar"],
                        environment: pause)
                let paused = waitUntil { processState(replacing.pid) == "T" }
                kill(replacing.pid, SIGKILL)
                let killed = replacing.finish()
                try #require(paused, "\(tool) never stopped at \(stage.mark)\n\(killed)")

                let expectedBin = box.run(["run", "busybox", "sh", "-c", "ls /bin | wc -l"]).stdout
                let next = box.run(["run", "img", "sh", "-c", "cat /which; ls /bin | wc -l"])
                #expect(
                    next.exitCode == 0 && next.stdout == "\(stage.expected)\n" + expectedBin,
                    "the run after \(tool) was killed at \(stage.mark) did not see the whole \(stage.expected) image\n\(next)"
                )
                #expect(
                    hiddenLeftovers(box).isEmpty,
                    "the killed \(tool)'s leftovers are still in images/ after the next run: \(hiddenLeftovers(box))"
                )
            }
        }

        @Test("a commit -f that cannot delete all of the old tree leaves no half-deleted image behind")
        func undeletableTreeCommit() throws {
            try checkUndeletableOldTree(tool: "commit")
        }

        @Test(
            "an import that cannot delete all of the old tree leaves no half-deleted image behind",
            .enabled(if: canImport, importReason))
        func undeletableTreeImport() throws {
            try checkUndeletableOldTree(tool: "import")
        }

        func checkUndeletableOldTree(tool: String) throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let newer = try makeImages(box)
                // An immutable file late in the old tree: a removal by path in place deletes
                // bin/, etc/ and usr/ first, then fails on it (EPERM), and the image is half gone.
                let stuck = box.root + "/images/img/var/stuck"
                try #require(FileManager.default.createFile(atPath: stuck, contents: Data()))
                try #require(
                    setImmutable(stuck, true),
                    "FS_IOC_SETFLAGS on \(stuck): \(String(cString: strerror(errno)))")
                defer { unsetImmutable(under: box.root + "/images") }

                let replaced =
                    tool == "commit"
                    ? box.run(["commit", "-f", newer, "img"])
                    : importImage(box, "img", from: box.root + "/images/newer.tar")
                let expectedBin = box.run(["run", "busybox", "sh", "-c", "ls /bin | wc -l"]).stdout
                let next = box.run(["run", "img", "sh", "-c", "cat /which; ls /bin | wc -l"])
                #expect(
                    next.exitCode == 0 && next.stdout == "new\n" + expectedBin,
                    "after \(tool) could not delete the old tree, the next run did not see the whole new image\n\(replaced)\n\(next)"
                )
            }
        }

        @Test(
            "import over an image that a running container uses is refused with one line, and the container's files stay",
            .enabled(if: canImport, importReason))
        func importOverImageInUse() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                _ = try makeImages(box)
                let user = box.newName()
                let started = box.run(["run", "-d", "--name", user, "img", "sleep", "300"])
                try #require(started.exitCode == 0, "\(started)")
                let tarball = box.root + "/images/img.tar"
                let before = try Data(contentsOf: URL(fileURLWithPath: tarball))

                let imported = importImage(box, "img", from: box.root + "/images/newer.tar")
                #expect(
                    imported.exitCode == 1
                        && imported.stderr
                            == "import-image: image 'img' is in use by a running container (stop it before replacing it)\n",
                    "\(imported)")
                let inside = box.run(["exec", user, "sh", "-c", "cat /which; ls /bin/busybox"])
                #expect(
                    inside.exitCode == 0 && inside.stdout == "old\n/bin/busybox\n",
                    "the container's files changed\n\(inside)")
                #expect(
                    try Data(contentsOf: URL(fileURLWithPath: tarball)) == before,
                    "images/img.tar was replaced")
            }
        }

        @Test(
            "a run that has found its image but not yet mounted it holds the image: commit -f is refused, the run completes"
        )
        func commitWaitsForStartingRun() throws {
            try checkReplacementRefusedDuringStart(tool: "commit")
        }

        @Test(
            "a run that has found its image but not yet mounted it holds the image: import is refused, the run completes",
            .enabled(if: canImport, importReason))
        func importWaitsForStartingRun() throws {
            try checkReplacementRefusedDuringStart(tool: "import")
        }

        func checkReplacementRefusedDuringStart(tool: String) throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let newer = try makeImages(box)
                let runtime = box.start(
                    ["run", "--name", box.newName(), "img", "cat", "/which"],
                    environment: ["MYDOCKER_TEST_PAUSE_AT": "image"])
                let paused = waitUntil { processState(runtime.pid) == "T" }
                let message = "image 'img' is in use by a running container (stop it before replacing it)\n"
                let replaced =
                    tool == "commit"
                    ? box.run(["commit", "-f", newer, "img"])
                    : importImage(box, "img", from: box.root + "/images/newer.tar")
                kill(runtime.pid, SIGCONT)
                let ran = runtime.finish()
                try #require(paused, "the run never stopped at its image mark\n\(ran)")
                let expected =
                    tool == "commit" ? (125, "step10: " + message) : (1, "import-image: " + message)
                #expect(
                    replaced.exitCode == expected.0 && replaced.stderr == expected.1, "\(replaced)")
                #expect(ran.exitCode == 0 && ran.stdout == "old\n", "the paused run lost its image\n\(ran)")
            }
        }

        @Test(
            "rm of a container whose layer swaps a directory for a symlink never deletes the symlink's target"
        )
        func removalDoesNotFollowSwappedSymlinks() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let victim = box.scratch + "/victim"
                // The same names as the files in the layer's directories: a walk that has listed a
                // directory and then removes its entries by path goes through the symlink if the
                // directory is swapped meanwhile, and finds a file of that name there.
                let victimFiles = (0..<200).map { "f\($0)" }
                try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: true)
                for file in victimFiles {
                    try #require(
                        FileManager.default.createFile(atPath: victim + "/" + file, contents: Data("x".utf8)))
                }
                let exchange = try renameExchange()
                // Each round: a stopped container whose upper layer holds pairs of a directory and a
                // symlink to the victim, which a host thread keeps exchanging (renameat2
                // RENAME_EXCHANGE: one atomic swap) while rm walks the layer. As root in the
                // container could do the same from inside.
                for round in 0..<5 {
                    let name = box.newName()
                    let started = box.run(["run", "-d", "--name", name, "busybox", "true"])
                    try #require(started.exitCode == 0, "\(started)")
                    let tree = box.root + "/overlay/\(name)/upper/tree"
                    var pairs: [(String, String)] = []
                    for i in 0..<10 {
                        let directory = tree + "/d\(i)"
                        let link = tree + "/l\(i)"
                        try FileManager.default.createDirectory(
                            atPath: directory, withIntermediateDirectories: true)
                        for file in victimFiles {
                            try #require(
                                FileManager.default.createFile(
                                    atPath: directory + "/" + file, contents: Data()))
                        }
                        try #require(symlink(victim, link) == 0)
                        pairs.append((directory, link))
                    }
                    let swapper = Swapper(pairs: pairs, exchange: exchange)
                    swapper.start()
                    let removed = box.run(["rm", "-f", name])
                    swapper.stopAndWait()
                    let left = Set((try? FileManager.default.contentsOfDirectory(atPath: victim)) ?? [])
                    try #require(
                        left == Set(victimFiles),
                        "round \(round): rm deleted files outside the layer, through a swapped-in symlink: \(victim) holds \(left.sorted())\n\(removed)"
                    )
                    #expect(removed.exitCode == 0, "\(removed)")
                }
            }
        }

        // MARK: helpers

        /// Image `img` (its /which says old, unpacked by one run), the tarball of image `newer`
        /// (/which says new), and the container `newer` came from, whose name is returned.
        func makeImages(_ box: Sandbox) throws -> String {
            let old = box.newName()
            let new = box.newName()
            for (name, which) in [(old, "old"), (new, "new")] {
                let r = box.run([
                    "run", "-d", "--name", name, "busybox", "sh", "-c", "echo \(which) > /which",
                ])
                try #require(r.exitCode == 0, "\(r)")
                let written = box.root + "/overlay/\(name)/upper/which"
                let done = waitUntil {
                    (try? String(contentsOfFile: written, encoding: .utf8)) == which + "\n"
                }
                try #require(done, "the container never wrote /which")
            }
            for (name, image) in [(old, "img"), (new, "newer")] {
                let r = box.run(["commit", name, image])
                try #require(r.exitCode == 0, "\(r)")
            }
            let rm = box.run(["rm", "-f", old])
            try #require(rm.exitCode == 0, "\(rm)")
            let first = box.run(["run", "img", "cat", "/which"])
            try #require(first.exitCode == 0 && first.stdout == "old\n", "\(first)")
            try #require(FileManager.default.fileExists(atPath: box.root + "/images/img/bin/busybox"))
            return new
        }

        func importImage(_ box: Sandbox, _ name: String, from tarball: String) -> RunResult {
            runProcess(
                ["/bin/bash", Self.importScript, name, tarball], environment: ["MYDOCKER_ROOT": box.root])
        }

        /// Hidden entries of images/ other than the image locks: partial tarballs and unpacks, trees
        /// moved aside to be deleted.
        func hiddenLeftovers(_ box: Sandbox) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: box.root + "/images")) ?? []).filter {
                $0.hasPrefix(".") && !$0.hasSuffix(".lock")
            }.sorted()
        }
    }
}

/// FS_IOC_SETFLAGS with FS_IMMUTABLE_FL (linux/fs.h): not even root may unlink the file.
private func setImmutable(_ path: String, _ on: Bool) -> Bool {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let getFlags: UInt = 0x8008_6601
    let setFlags: UInt = 0x4008_6602
    let immutable: Int = 0x10
    var flags: Int = 0
    guard ioctl(fd, getFlags, &flags) == 0 else { return false }
    flags = on ? flags | immutable : flags & ~immutable
    return ioctl(fd, setFlags, &flags) == 0
}

/// Clears the immutable flag of every file called `stuck` below `directory`, wherever the test
/// left it (the old tree, or the hidden name it was moved to).
private func unsetImmutable(under directory: String) {
    guard let walker = FileManager.default.enumerator(atPath: directory) else { return }
    while let relative = walker.nextObject() as? String {
        if (relative as NSString).lastPathComponent == "stuck" {
            _ = setImmutable(directory + "/" + relative, false)
        }
    }
}

/// renameat2(2), looked up at run time (glibc 2.28+ has it; Swift's Glibc module may not show it).
private typealias RenameAt2 =
    @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32

private func renameExchange() throws -> RenameAt2 {
    guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "renameat2") else {
        throw HarnessError("renameat2 not found in libc")
    }
    return unsafeBitCast(symbol, to: RenameAt2.self)
}

/// A host thread that exchanges each directory with its symlink, round and round, until stopped.
private final class Swapper: @unchecked Sendable {
    private let pairs: [([CChar], [CChar])]
    private let exchange: RenameAt2
    private let lock = NSLock()
    private var stopping = false
    private var stopped = false

    init(pairs: [(String, String)], exchange: RenameAt2) {
        self.pairs = pairs.map { (Array($0.0.utf8CString), Array($0.1.utf8CString)) }
        self.exchange = exchange
    }

    private var shouldStop: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    func start() {
        let thread = Thread { [self] in
            let renameExchange: UInt32 = 2  // RENAME_EXCHANGE, linux/fs.h
            while !shouldStop {
                for (a, b) in pairs {
                    _ = a.withUnsafeBufferPointer { a in
                        b.withUnsafeBufferPointer { b in
                            exchange(AT_FDCWD, a.baseAddress!, AT_FDCWD, b.baseAddress!, renameExchange)
                        }
                    }
                }
            }
            lock.lock()
            stopped = true
            lock.unlock()
        }
        thread.start()
    }

    func stopAndWait() {
        lock.lock()
        stopping = true
        lock.unlock()
        _ = waitUntil {
            lock.lock()
            defer { lock.unlock() }
            return stopped
        }
    }
}

/// Field 3 of /proc/PID/stat (R, S, T, Z...), or nil when there is no such process.
private func processState(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}
