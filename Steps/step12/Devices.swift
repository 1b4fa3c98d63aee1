import CContainerSupport
import ContainerSupport
import Glibc

// A device node is only a name for a (type, major, minor) triple: whoever may mknod can make
// /tmp/disk for the host's sda (block 8:0) in any directory, and with CAP_MKNOD the container's root
// may. What stops the open is the device cgroup: the kernel asks it on every open of a node (and
// every mknod) whether this cgroup may use that device. docker allows mknod of anything and read
// and write of the few devices a program expects; so do we. cgroup v1 keeps the rules in
// devices.deny/devices.allow; cgroup v2 has no such files and asks a BPF program instead.

/// The devices a container may read and write, as devices.allow lines: docker's defaults.
let allowedDevices = [
    "c 1:3 rwm",  // null
    "c 1:5 rwm",  // zero
    "c 1:7 rwm",  // full
    "c 1:8 rwm",  // random
    "c 1:9 rwm",  // urandom
    "c 5:0 rwm",  // tty
    "c 5:1 rwm",  // console
    "c 5:2 rwm",  // ptmx
    "c 136:* rwm",  // pts/*
]

extension Cgroup {
    /// Runtime side, before any process joins: only the default devices (a privileged container
    /// keeps the host's rule, every device).
    func restrictDevices() throws {
        switch version {
        case .v1:
            let hierarchy = try v1Hierarchy("devices", in: findV1Hierarchies())
            guard let directory = directories.first(where: { $0.hasPrefix(hierarchy + "/") }) else { return }
            // `a` denies everything, then each line allows one device; mknod of any node stays
            // allowed ("c *:* m", "b *:* m"), only the open of a node is refused.
            try writeFile(directory + "/devices.deny", "a")
            for rule in ["c *:* m", "b *:* m"] + allowedDevices {
                try writeFile(directory + "/devices.allow", rule)
            }
        case .v2:
            guard let directory = directories.first else { return }
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw SyscallError("open \(directory)") }
            defer { close(fd) }
            guard cs_attach_device_program(fd) == 0 else {
                throw SyscallError("attach the device program to \(directory) (bpf BPF_CGROUP_DEVICE)")
            }
        }
    }
}

// MARK: init side

/// A character or block device of the host's /dev, for `--privileged` (docker gives a privileged
/// container the host's devices). Read before pivot_root, made after the new /dev exists.
struct HostDevice {
    let name: String
    let mode: mode_t
    let device: dev_t
}

func listHostDevices() -> [HostDevice] {
    ((try? listDirectory("/dev")) ?? []).compactMap { name in
        var info = stat()
        guard lstat("/dev/" + name, &info) == 0 else { return nil }
        let type = info.st_mode & S_IFMT
        guard type == S_IFCHR || type == S_IFBLK else { return nil }
        return HostDevice(name: name, mode: info.st_mode, device: info.st_rdev)
    }
}

func createHostDevices(_ devices: [HostDevice]) throws {
    for device in devices where !fileExists("/dev/" + device.name) {
        guard mknod("/dev/" + device.name, device.mode, device.device) == 0 else {
            throw SyscallError("mknod /dev/\(device.name)")
        }
    }
}

/// POSIX message queues (mq_overview(7)) live in a filesystem of their own, one per IPC namespace:
/// mounted here, it shows the container's queues only.
func mountMessageQueues() throws {
    try makeDirectories("/dev/mqueue")
    guard mount("mqueue", "/dev/mqueue", "mqueue", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) == 0 else {
        throw SyscallError("mount mqueue on /dev/mqueue")
    }
}

/// With -t, /dev/console is the container's terminal, as in docker: programs that write to the
/// console (init systems, getty) reach the user, not the host's console. The terminal is our
/// stdin, a node of the host's devpts, and a bind mount's source must be a mount of this mount
/// namespace (EINVAL otherwise). /proc/self/fd/0 would name the host's own mount, the one the
/// terminal was opened on; its path (/dev/pts/3) finds our copy of it. So the path is bound before
/// pivot_root, onto a file in the new root, and moved to /dev/console once the new /dev exists.
let consoleStaging = "/.console"

func bindTerminal(into rootfs: String) throws {
    let staging = rootfs + consoleStaging
    let fd = open(staging, O_WRONLY | O_CREAT | O_NOCTTY | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SyscallError("create \(staging)") }
    close(fd)
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = readlink("/proc/self/fd/0", &buffer, buffer.count)
    guard n > 0 else { throw SyscallError("readlink /proc/self/fd/0") }
    let terminal = String(decoding: buffer[..<n], as: UTF8.self)
    guard mount(terminal, staging, nil, UInt(MS_BIND), nil) == 0 else {
        throw SyscallError("bind the terminal \(terminal) to \(staging)")
    }
}

func attachConsole() throws {
    let fd = open("/dev/console", O_WRONLY | O_CREAT | O_NOCTTY | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SyscallError("create /dev/console") }
    close(fd)
    guard mount(consoleStaging, "/dev/console", nil, UInt(MS_MOVE), nil) == 0 else {
        throw SyscallError("move the terminal to /dev/console")
    }
    guard unlink(consoleStaging) == 0 else { throw SyscallError("unlink \(consoleStaging)") }
}
