import ContainerSupport
import Glibc

// An image is nothing more than a filesystem in a tarball (plus, for docker, metadata: the command,
// the environment, the layer history). `commit` tars the running container's merged view, which
// is the image it started from with its writes on top, and stores it as a new image that `run`
// can start from. Docker keeps images as stacks of layers and commit adds one layer (the upper
// directory); flattening the merged view into one tarball is simpler and gives the same files.

let commitSpec = CommandSpec(
    name: "commit",
    arguments: "CONTAINER IMAGE",
    summary: "Save a container's files as the image IMAGE (images/IMAGE.tar).",
    flags: [.bool("-f", "--force", help: "replace an existing image")]
)

/// Image names become file names under images/: the tarball NAME.tar and the unpacked tree NAME/.
/// So no `/`, no `..`, no name ending in `.tar` (image `busybox.tar`'s tree would be image
/// `busybox`'s tarball), and none starting with `.`: that is where the runtime's lock and
/// temporary files live. rootfs-tools/import-image.sh checks the same rule; change both together.
func validateImageName(_ name: String) throws {
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
    guard !name.isEmpty, name.count <= 128, name.first != ".", name.first != "-",
        name.allSatisfy({ allowed.contains($0) })
    else {
        throw UsageError("invalid image name '\(name)' (lowercase letters, digits, '_', '.', '-'; no '/')")
    }
    guard !name.hasSuffix(".tar") else {
        let other = name.dropLast(4)
        throw UsageError(
            "invalid image name '\(name)' (a name may not end in '.tar': images/\(name) is the tarball of image '\(other)')"
        )
    }
}

/// `commit CONTAINER IMAGE`: tar the container's merged view into images/IMAGE.tar. The layer stays
/// mounted until `rm`, so an exited detached container can be committed too.
func commit(_ arguments: [String]) throws -> Int32 {
    let parsed = try commitSpec.parse(arguments)
    guard parsed.positionals.count == 2 else {
        throw UsageError("commit needs a container and an image name (try: \(toolName) commit web myimage)")
    }
    let name = parsed.positionals[1]
    try validateImageName(name)
    try requireRoot()
    try Paths.validateRoot()
    let record = try findContainer(parsed.positionals[0])
    let layer = Layer(name: record.name)
    let tarball = Paths.images + "/\(name).tar"
    // Refused before the tar, which may take long, and checked again under the lock.
    try checkImageReplaceable(name, force: parsed.has("-f"))
    let partial = try writeImage(from: layer.merged, name: name)
    do {
        try replaceImage(name, with: partial, force: parsed.has("-f"))
    } catch {
        unlink(partial)
        throw error
    }
    printOutput(tarball + "\n")
    return 0
}

/// A name that is taken needs -f, and an image that is some container's read-only lower layer
/// is never replaced: that would change the container's files behind its back.
func checkImageReplaceable(_ name: String, force: Bool) throws {
    let unpacked = Paths.images + "/\(name)"
    guard fileExists(Paths.images + "/\(name).tar") || isDirectory(unpacked) else { return }
    guard force else { throw Failure("image '\(name)' already exists (use -f to replace it)") }
    guard try !isLowerLayerInUse(unpacked) else { throw imageInUse(name) }
}

func imageInUse(_ name: String) -> Failure {
    Failure("image '\(name)' is in use by a running container (stop it before replacing it)")
}

/// Tars `root` into a hidden temporary file, `.NAME.tar.partial.PID`, and returns its path: a failed
/// or interrupted commit never leaves a truncated image that `run` would try to unpack.
func writeImage(from root: String, name: String) throws -> String {
    try makeDirectories(Paths.images)
    removeLeftovers(of: name)
    let partial = Paths.images + "/.\(name).tar.partial.\(getpid())"
    do {
        try runProgram(["tar", "--numeric-owner", "-cf", partial, "-C", root, "."], stage: "tar \(root)")
    } catch {
        unlink(partial)
        throw error
    }
    return partial
}

/// Puts the new tarball in place of image `name`, under an exclusive lock on the image, so that no
/// run is between finding the old tree and mounting it. Each step is one rename(2), which is
/// atomic: a commit killed at any point leaves the old image or the new one, never a mix. The old
/// tree is moved aside first, to a hidden name, and only then deleted; deleting it in place
/// would leave a half-deleted tree that the next run trusts as its lower layer.
func replaceImage(_ name: String, with partial: String, force: Bool) throws {
    let tarball = Paths.images + "/\(name).tar"
    let unpacked = Paths.images + "/\(name)"
    let trash = Paths.images + "/.\(name).removing.\(getpid())"
    let lock = try lockImageForReplacement(name)
    trace("image-locked")
    do {
        defer { close(lock) }
        try checkImageReplaceable(name, force: force)
        try? removeTree(trash)
        guard rename(unpacked, trash) == 0 || errno == ENOENT else {
            throw SyscallError("rename \(unpacked) to \(trash)")
        }
        trace("image-old-moved")
        guard rename(partial, tarball) == 0 else { throw SyscallError("rename \(partial) to \(tarball)") }
        trace("image-new-placed")
    }
    // Outside the lock: the old tree is no image any more. If this fails or is killed, the next
    // run, commit or import of this image removes what is left (removeLeftovers).
    try? removeTree(trash)
}

/// The exclusive side of lockImage (Rootfs.swift). It does not wait: a run holds its shared lock
/// as long as its runtime lives, and that container is using the image.
func lockImageForReplacement(_ name: String) throws -> Int32 {
    let path = Paths.images + "/.\(name).lock"
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SyscallError("open \(path)") }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
        let error = errno
        close(fd)
        if error == EWOULDBLOCK { throw imageInUse(name) }
        throw SyscallError("flock \(path)", errno: error)
    }
    return fd
}

/// Whether any overlay mounted on this host uses `directory` as its lower layer.
func isLowerLayerInUse(_ directory: String) throws -> Bool {
    try readFile("/proc/self/mountinfo").split(separator: "\n").contains { line in
        line.contains("lowerdir=\(directory),") || line.hasSuffix("lowerdir=\(directory)")
    }
}
