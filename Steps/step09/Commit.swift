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

/// Image names become file names under images/: no `/`, no `..`, nothing hidden.
func validateImageName(_ name: String) throws {
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
    guard !name.isEmpty, name.count <= 128, name.first != ".", name.first != "-",
        name.allSatisfy({ allowed.contains($0) })
    else {
        throw UsageError("invalid image name '\(name)' (lowercase letters, digits, '_', '.', '-'; no '/')")
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
    let unpacked = Paths.images + "/\(name)"
    if fileExists(tarball) || isDirectory(unpacked) {
        guard parsed.has("-f") else { throw Failure("image '\(name)' already exists (use -f to replace it)") }
        // The unpacked copy is some container's read-only lower layer while it runs: replacing it
        // under a live overlay would change that container's files behind its back.
        guard try !isLowerLayerInUse(unpacked) else {
            throw Failure("image '\(name)' is in use by a running container (stop it before replacing it)")
        }
    }
    try writeImage(from: layer.merged, to: tarball)
    // The next run unpacks the new tarball afresh.
    try removeTree(unpacked)
    printOutput(tarball + "\n")
    return 0
}

/// Tars `root` into a temporary file and renames it into place: a failed or interrupted commit never
/// leaves a truncated image that `run` would try to unpack.
func writeImage(from root: String, to tarball: String) throws {
    // A commit that was killed leaves its partial file, named with its PID: remove those whose
    // commit is gone.
    let prefix = String(tarball.split(separator: "/").last ?? "") + ".partial."
    for entry in try listDirectory(Paths.images) where entry.hasPrefix(prefix) {
        if let pid = Int32(entry.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH {
            unlink(Paths.images + "/" + entry)
        }
    }
    let partial = tarball + ".partial.\(getpid())"
    do {
        try runProgram(["tar", "--numeric-owner", "-cf", partial, "-C", root, "."], stage: "tar \(root)")
    } catch {
        unlink(partial)
        throw error
    }
    guard rename(partial, tarball) == 0 else {
        let error = SyscallError("rename \(partial) to \(tarball)")
        unlink(partial)
        throw error
    }
}

/// Whether any overlay mounted on this host uses `directory` as its lower layer.
func isLowerLayerInUse(_ directory: String) throws -> Bool {
    try readFile("/proc/self/mountinfo").split(separator: "\n").contains { line in
        line.contains("lowerdir=\(directory),") || line.hasSuffix("lowerdir=\(directory)")
    }
}
