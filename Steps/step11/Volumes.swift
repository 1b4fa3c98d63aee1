import ContainerSupport
import Glibc

// A volume makes a host directory appear inside the container, so that what the container writes
// there outlives it. It is a bind mount (mount(2) with MS_BIND): the same directory, visible at a
// second place in the tree. The mydocker tutorial added the host directory as one more aufs
// branch; docker, like us, bind-mounts it into the container's root before pivot_root, so the
// mount moves into the new root with everything else.

/// `-v /host/dir:/data`: SOURCE on the host, TARGET in the container.
struct Volume {
    let source: String
    let target: String
}

/// Checks a `-v` spec before anything is created: both paths absolute, the target not the root,
/// no `..` that could walk the target out of the container's root.
func parseVolume(_ spec: String) throws -> Volume {
    let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
        throw UsageError("invalid volume '\(spec)': use -v /host/dir:/container/dir")
    }
    let (source, target) = (parts[0], parts[1])
    guard source.hasPrefix("/") else {
        throw UsageError("invalid volume '\(spec)': host path '\(source)' must be absolute")
    }
    guard target.hasPrefix("/") else {
        throw UsageError("invalid volume '\(spec)': container path '\(target)' must be absolute")
    }
    guard target.split(separator: "/").contains(where: { $0 != "." && $0 != ".." }) else {
        throw UsageError("invalid volume '\(spec)': container path '\(target)' cannot be the root")
    }
    guard !target.split(separator: "/").contains("..") else {
        throw UsageError("invalid volume '\(spec)': container path '\(target)' must not contain '..'")
    }
    if fileExists(source) && !isDirectory(source) {
        throw UsageError("invalid volume '\(spec)': host path '\(source)' is not a directory")
    }
    return Volume(source: source, target: target)
}

/// Runtime side, before the container starts: a missing host directory is created, as docker does.
func createVolumeSources(_ volumes: [Volume]) throws {
    for volume in volumes where !isDirectory(volume.source) {
        try makeDirectories(volume.source)
    }
}

/// Init side, after the overlay is in place and before pivot_root: bind each host directory onto
/// its target inside the new root (creating the target in the container's layer if the image
/// lacks it). MS_REC carries along anything mounted below the host directory. The mount exists
/// only in the container's mount namespace, so it vanishes with the container; the host
/// directory and its files stay.
func mountVolumes(_ volumes: [Volume], into rootfs: String) throws {
    for volume in volumes {
        let target = try makeTarget(volume.target, in: rootfs)
        guard mount(volume.source, target, nil, UInt(MS_BIND | MS_REC), nil) == 0 else {
            throw SyscallError("bind mount \(volume.source) on \(target)")
        }
    }
}

/// Creates the target below the new root one component at a time, and refuses a symlink on the
/// way. The image made that symlink, and we resolve paths before pivot_root, in the host's tree:
/// an absolute link such as /data -> /etc would send the bind mount (and the mkdirs) to the host's
/// /etc. Real runtimes resolve the link inside the root instead (cyphar/filepath-securejoin,
/// openat2's RESOLVE_IN_ROOT); refusing it is the simple, safe choice.
func makeTarget(_ target: String, in rootfs: String) throws -> String {
    var path = rootfs
    for component in target.split(separator: "/") where component != "." {
        path += "/" + component
        var info = stat()
        if lstat(path, &info) != 0 {
            guard mkdir(path, 0o755) == 0 else { throw SyscallError("mkdir \(path)") }
        } else if (info.st_mode & S_IFMT) == S_IFLNK {
            let inside = path.dropFirst(rootfs.count)
            throw Failure("volume target \(target): \(inside) is a symlink in the image")
        } else if (info.st_mode & S_IFMT) != S_IFDIR {
            let inside = path.dropFirst(rootfs.count)
            throw Failure("volume target \(target): \(inside) is not a directory")
        }
    }
    return path
}
