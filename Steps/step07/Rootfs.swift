import CContainerSupport
import ContainerSupport
import Glibc

// A container should see its own files, not the host's. Two pieces make that work:
//   1. an image, unpacked once into a read-only directory (the lower layer), and a writable layer
//      per run on top of it, joined by overlayfs into one tree (`merged`). Writes land in the
//      upper layer; the image itself never changes; throwing the upper layer away forgets them.
//   2. pivot_root(2), which makes `merged` the root of the container's mount namespace and moves
//      the old (host) root aside, where we unmount it, so the host is not even reachable by `..`.
// The mydocker tutorial used aufs for (1); aufs never entered the mainline kernel and is gone
// from current distributions. overlayfs (mainline since 3.18) is what docker's overlay2 uses.

/// Steps 05 to 07 run one container at a time, in one workspace, as the tutorial does.
let workspaceName = "default"

/// The writable layer of the one workspace: `overlay/default/{upper,work,merged}`.
struct Workspace {
    let directory: String
    var upper: String { directory + "/upper" }
    var work: String { directory + "/work" }
    var merged: String { directory + "/merged" }
}

// MARK: the image (runtime side)

/// `images/NAME/`, unpacked from `images/NAME.tar` on first use and reused after: the lower layer
/// is never written to, so every container can share it.
func unpackImage(_ name: String) throws -> String {
    let tarball = Paths.images + "/\(name).tar"
    let directory = Paths.images + "/\(name)"
    guard isDirectory(directory) || fileExists(tarball) else { throw imageNotFound(name) }
    // Held until this runtime exits, so never closed: commit -f and import-image.sh cannot swap the
    // image between our finding it here and our overlay using it (after that, mountinfo shows it).
    _ = try lockImage(name)
    removeLeftovers(of: name)
    if isDirectory(directory) { return directory }
    guard fileExists(tarball) else { throw imageNotFound(name) }
    // Unpack beside the final name and rename into place: a run that is killed halfway leaves a
    // temporary directory, never a half-filled image that later runs would trust.
    let partial = Paths.images + "/.\(name).unpacking.\(getpid())"
    try? removeTree(partial)
    try makeDirectories(partial)
    do {
        try runProgram(["tar", "-xf", tarball, "-C", partial, "--numeric-owner"], stage: "unpack \(tarball)")
    } catch {
        try? removeTree(partial)
        throw error
    }
    if rename(partial, directory) != 0 {
        // Another run unpacked the same image meanwhile: use theirs.
        try? removeTree(partial)
        guard isDirectory(directory) else { throw SyscallError("rename \(partial) to \(directory)") }
    }
    return directory
}

func imageNotFound(_ name: String) -> Failure {
    let hint =
        name == "busybox"
        ? "build it: sudo rootfs-tools/build-busybox-image.sh"
        : "import a tarball with: sudo rootfs-tools/import-image.sh \(name) FILE.tar"
    return Failure("rootfs image '\(name)' not found under \(Paths.images) (\(hint))")
}

/// Takes a shared flock(2) on `images/.NAME.lock`; whoever replaces the image takes it exclusively.
/// The kernel drops a lock when its holder dies, however it dies, so a killed run never leaves
/// the image locked. The returned fd holds the lock.
func lockImage(_ name: String) throws -> Int32 {
    let path = Paths.images + "/.\(name).lock"
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SyscallError("open \(path)") }
    guard flock(fd, LOCK_SH) == 0 else {
        let error = SyscallError("flock \(path)")
        close(fd)
        throw error
    }
    return fd
}

/// What runs, commits and imports that were killed left of image `name`, by the names they give
/// their temporary files: `.NAME.unpacking.PID`, `.NAME.tar.partial.PID` and `.NAME.removing.PID`
/// (an old tree moved aside to be deleted). Every such name starts with `.`, which no image name
/// may, so none can be another image's files. Those whose process is gone are removed.
func removeLeftovers(of name: String) {
    let prefixes = ["unpacking", "tar.partial", "removing"].map { ".\(name).\($0)." }
    for entry in (try? listDirectory(Paths.images)) ?? [] {
        for prefix in prefixes where entry.hasPrefix(prefix) {
            if let pid = Int32(entry.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH {
                try? removeTree(Paths.images + "/" + entry)
            }
        }
    }
}

// MARK: the writable layer (runtime side)

/// Takes the one workspace for this run. An flock(2) on `overlay/default.lock` says the workspace
/// is in use; the kernel drops it when the runtime exits, however it exits, so a runtime killed
/// with SIGKILL never leaves the workspace locked. The returned fd holds the lock.
func lockWorkspace() throws -> Int32 {
    try makeDirectories(Paths.overlay)
    let path = Paths.overlay + "/\(workspaceName).lock"
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SyscallError("open \(path)") }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
        let error = errno
        close(fd)
        if error == EWOULDBLOCK {
            throw Failure(
                "another container is running in \(Paths.overlay)/\(workspaceName) (this step runs one at a time)"
            )
        }
        throw SyscallError("flock \(path)", errno: error)
    }
    return fd
}

/// Makes upper/ and work/ and mounts the overlay on merged/. Leftovers of a runtime that was
/// killed are cleared first: we hold the lock, so nobody else is using them.
func mountWorkspace(lower: String) throws -> Workspace {
    let workspace = Workspace(directory: Paths.overlay + "/\(workspaceName)")
    removeWorkspace(workspace)
    for directory in [workspace.upper, workspace.work, workspace.merged] {
        try makeDirectories(directory)
    }
    // lowerdir is read-only; upperdir takes the writes; workdir is overlayfs's scratch space for
    // atomic copy-up and must be an empty directory on the same filesystem as upperdir.
    let options = "lowerdir=\(lower),upperdir=\(workspace.upper),workdir=\(workspace.work)"
    // volatile (Linux 5.10): overlayfs skips every sync of the upper layer, the container's own
    // fsync(2) and syncfs(2) and, at unmount, the sync of the whole filesystem under upperdir,
    // which waits for every process's unwritten data on that disk, not only the container's.
    // Safe only because the workspace is deleted when the container exits: after a crash of the
    // host its files may be torn, and nobody mounts it again (overlayfs would refuse: it leaves
    // work/work/incompat/volatile as the mark). Older kernels don't know the option (EINVAL).
    guard
        mount("overlay", workspace.merged, "overlay", 0, options + ",volatile") == 0
            || (errno == EINVAL && mount("overlay", workspace.merged, "overlay", 0, options) == 0)
    else {
        let error = SyscallError("mount overlay on \(workspace.merged)")
        removeWorkspace(workspace)
        throw error
    }
    return workspace
}

/// Unmounts the overlay and deletes the layer: whatever the container wrote is gone. MNT_DETACH,
/// so a process that still has a file open there cannot make the unmount fail.
func removeWorkspace(_ workspace: Workspace) {
    umount2(workspace.merged, Int32(MNT_DETACH))
    try? removeTree(workspace.directory)
}

// MARK: the new root (init side, inside the new mount namespace)

/// Makes `newRoot` the root of this mount namespace and drops the old one.
///
/// pivot_root(2) wants new_root to be a mount point (our overlay is) that is not on the same mount
/// as the current root, and no shared propagation on either, which makeMountsPrivate() has
/// ensured: otherwise it fails with EINVAL. chroot(2) would only change this process's idea of
/// `/`; the old root stays mounted and a process with CAP_SYS_CHROOT can climb out. After
/// pivot_root and the unmount, the host's tree is simply not in this namespace any more.
func pivotRoot(into newRoot: String) throws {
    let putOld = newRoot + "/.pivot_root"
    guard mkdir(putOld, 0o700) == 0 || errno == EEXIST else { throw SyscallError("mkdir \(putOld)") }
    guard cs_pivot_root(newRoot, putOld) == 0 else { throw SyscallError("pivot_root into \(newRoot)") }
    guard chdir("/") == 0 else { throw SyscallError("chdir /") }
    // The old root is now at /.pivot_root, with every host mount below it. MNT_DETACH takes the
    // whole tree away even though it is busy (our own binary was executed from it).
    guard umount2("/.pivot_root", Int32(MNT_DETACH)) == 0 else { throw SyscallError("umount /.pivot_root") }
    guard rmdir("/.pivot_root") == 0 else { throw SyscallError("rmdir /.pivot_root") }
}

/// /sys, read-only: the container may read its network devices and cgroup files, but not change
/// the host's kernel settings through them.
func mountSys() throws {
    let flags = UInt(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    guard mount("sysfs", "/sys", "sysfs", flags, nil) == 0 else { throw SyscallError("mount sysfs on /sys") }
}

/// /dev as a small tmpfs holding only the devices a program expects, never the host's disks:
/// null, zero, full, random, urandom and tty, plus a private devpts for terminals and /dev/shm.
func setUpDev() throws {
    guard mount("tmpfs", "/dev", "tmpfs", UInt(MS_NOSUID | MS_STRICTATIME), "mode=755,size=65536k") == 0
    else {
        throw SyscallError("mount tmpfs on /dev")
    }
    // Character devices, major and minor numbers from the kernel's Documentation/admin-guide/devices.txt.
    let devices: [(name: String, major: UInt32, minor: UInt32)] = [
        ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
    ]
    for device in devices {
        let path = "/dev/" + device.name
        guard mknod(path, S_IFCHR | 0o666, __dev_t(cs_makedev(device.major, device.minor))) == 0 else {
            throw SyscallError("mknod \(path)")
        }
        // mknod applies the umask; the devices must be usable by every user.
        guard chmod(path, 0o666) == 0 else { throw SyscallError("chmod \(path)") }
    }
    // newinstance: a devpts of our own, so the container sees its own terminals and not the host's
    // /dev/pts/*; ptmxmode=0666 lets anyone open the multiplexer through /dev/ptmx.
    try makeDirectories("/dev/pts")
    let ptsOptions = "newinstance,ptmxmode=0666,mode=0620"
    guard mount("devpts", "/dev/pts", "devpts", UInt(MS_NOSUID | MS_NOEXEC), ptsOptions) == 0 else {
        throw SyscallError("mount devpts on /dev/pts")
    }
    try makeDirectories("/dev/shm")
    guard
        mount("shm", "/dev/shm", "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), "mode=1777,size=65536k")
            == 0
    else { throw SyscallError("mount tmpfs on /dev/shm") }
    let links = [
        ("/dev/ptmx", "pts/ptmx"), ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"),
    ]
    for (link, target) in links {
        guard symlink(target, link) == 0 else { throw SyscallError("symlink \(link)") }
    }
}

/// Parts of /proc that reach the host's kernel, hidden the way docker hides them: files get
/// /dev/null bind-mounted over them (kcore is the host's memory, sysrq-trigger can reboot it),
/// directories of kernel settings become read-only.
func maskHostPaths() throws {
    for path in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sysrq-trigger"]
    where fileExists(path) {
        guard mount("/dev/null", path, nil, UInt(MS_BIND), nil) == 0 else {
            throw SyscallError("mask \(path)")
        }
    }
    for path in ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"] where fileExists(path) {
        // A bind mount cannot be made read-only in the same call: bind, then remount it read-only.
        guard mount(path, path, nil, UInt(MS_BIND | MS_REC), nil) == 0,
            mount(path, path, nil, UInt(MS_BIND | MS_REMOUNT | MS_RDONLY), nil) == 0
        else { throw SyscallError("make \(path) read-only") }
    }
}
