import CContainerSupport
import ContainerSupport
import Glibc

// Programs in a container read their own limits from /sys/fs/cgroup (a JVM sizes its heap from
// memory.max), so a container needs its cgroup there. Mounting the host's tree would show every
// cgroup on the machine, and a writable one would let the container raise its own limits or, on
// v1, set a release_agent that the host runs as root (CVE-2022-0492). Two things prevent that:
//   1. a cgroup namespace (cgroup_namespaces(7)): made after the runtime has put us into our
//      cgroup, it turns that cgroup into the namespace's root, so /proc/self/cgroup says `/` and a
//      cgroup filesystem mounted inside starts at our own directory;
//   2. the mount is read-only, and without CAP_SYS_ADMIN it cannot be remounted.

/// A cgroup filesystem the host has under /sys/fs/cgroup, to be mounted again inside.
struct CgroupMount {
    /// Below /sys/fs/cgroup: `memory` (v1), `unified` (a hybrid host's cgroup2), `` (v2).
    let name: String
    let type: String
    /// v1's superblock options, the controllers (`memory`, `cpu,cpuacct`, `name=systemd`): a
    /// hierarchy can only be mounted again with exactly its own set.
    let options: String?
}

/// Init side, after the cgroup join (readCommand returned, so the runtime has written our PID to
/// cgroup.procs) and before any cgroup is mounted: the namespace's root is fixed at this moment.
func enterCgroupNamespace() throws {
    guard cs_unshare(CLONE_NEWCGROUP) == 0 else { throw SyscallError("unshare CLONE_NEWCGROUP") }
}

/// The host's cgroup mounts and the symlinks beside them (`cpu -> cpu,cpuacct`), read before
/// pivot_root while the host's mount table is still ours.
func listCgroupMounts() throws -> (mounts: [CgroupMount], links: [(String, String)]) {
    var mounts: [CgroupMount] = []
    for mount in try readMountInfo() where mount.fsType == "cgroup" || mount.fsType == "cgroup2" {
        let point = mount.mountPoint
        guard point == cgroupRoot || point.hasPrefix(cgroupRoot + "/") else { continue }
        // A release agent can only be set from the host's cgroup namespace: the mount would fail.
        let options = mount.superOptions.filter {
            $0 != "rw" && $0 != "ro" && !$0.hasPrefix("release_agent=")
        }.joined(separator: ",")
        mounts.append(
            CgroupMount(
                name: String(point.dropFirst(cgroupRoot.count)).trimmingSlashes(), type: mount.fsType,
                options: mount.fsType == "cgroup" ? options : nil))
    }
    var links: [(String, String)] = []
    for entry in (try? listDirectory(cgroupRoot)) ?? [] {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = readlink(cgroupRoot + "/" + entry, &buffer, buffer.count)
        if n > 0 { links.append((entry, String(decoding: buffer[..<n], as: UTF8.self))) }
    }
    return (mounts, links)
}

/// Mounts the container's view of its cgroup on /sys/fs/cgroup: cgroup2 directly (v2), or a tmpfs
/// with one mount per hierarchy (v1), all read-only unless the container is privileged.
func mountCgroups(_ host: (mounts: [CgroupMount], links: [(String, String)]), privileged: Bool) throws {
    let readOnly = privileged ? 0 : MS_RDONLY
    let flags = UInt(readOnly | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if let unified = host.mounts.first(where: { $0.name.isEmpty }) {
        guard mount("cgroup", cgroupRoot, unified.type, flags, nil) == 0 else {
            throw SyscallError("mount cgroup2 on \(cgroupRoot)")
        }
        return
    }
    guard mount("tmpfs", cgroupRoot, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), "mode=755") == 0 else {
        throw SyscallError("mount tmpfs on \(cgroupRoot)")
    }
    for hierarchy in host.mounts {
        let point = cgroupRoot + "/" + hierarchy.name
        guard mkdir(point, 0o555) == 0 else { throw SyscallError("mkdir \(point)") }
        guard mount("cgroup", point, hierarchy.type, flags, hierarchy.options) == 0 else {
            throw SyscallError("mount \(hierarchy.type) \(hierarchy.options ?? "") on \(point)")
        }
    }
    for (name, target) in host.links {
        guard symlink(target, cgroupRoot + "/" + name) == 0 else {
            throw SyscallError("symlink \(cgroupRoot)/\(name)")
        }
    }
    // The tmpfs too: no new directory or mount point appears beside the hierarchies.
    guard mount(nil, cgroupRoot, nil, UInt(MS_REMOUNT) | flags, "mode=755") == 0 else {
        throw SyscallError("remount \(cgroupRoot) read-only")
    }
}

extension String {
    fileprivate func trimmingSlashes() -> String {
        var text = Substring(self)
        while text.first == "/" { text = text.dropFirst() }
        return String(text)
    }
}
