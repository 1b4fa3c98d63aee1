import CContainerSupport
import ContainerSupport
import Glibc

// Control groups limit what a group of processes may use. The kernel exposes them as a filesystem:
// a cgroup is a directory, a limit is a file in it, and a process joins by writing its PID to
// `cgroup.procs`. Two layouts exist, and a runtime must handle both (cgroups(7)):
//   v1: one hierarchy per controller (/sys/fs/cgroup/memory, /sys/fs/cgroup/cpu, ...), so the
//       container gets a directory in each;
//   v2: one unified tree (/sys/fs/cgroup), one directory per container, controllers switched on
//       for children through `cgroup.subtree_control`.

let cgroupRoot = "/sys/fs/cgroup"
/// Our cgroups live under `mydocker/ID`, as docker's live under `docker/ID`.
let cgroupParent = "mydocker"
let procsFile = "cgroup.procs"
let subtreeControlFile = "cgroup.subtree_control"

/// What `-m`, `-cpushare` and `-cpuset` asked for; nil means no limit.
struct ResourceLimits {
    var memoryBytes: UInt64?
    var cpuShares: UInt64?
    var cpus: String?
}

enum CgroupVersion {
    case v1
    case v2
}

/// On a v2 host /sys/fs/cgroup is itself a cgroup2 filesystem; on a v1 (or hybrid) host it is a
/// tmpfs holding one mount per hierarchy. statfs(2)'s magic number tells them apart, as runc does.
func detectCgroupVersion() throws -> CgroupVersion {
    var magic: UInt = 0
    guard cs_filesystem_magic(cgroupRoot, &magic) == 0 else { throw SyscallError("statfs \(cgroupRoot)") }
    return magic == UInt(CGROUP2_SUPER_MAGIC) ? .v2 : .v1
}

/// One container's cgroup: a directory per v1 hierarchy, or one directory in the v2 tree.
struct Cgroup {
    let id: String
    let version: CgroupVersion
    /// Every directory we made for it, the ones that must be removed again.
    private(set) var directories: [String] = []

    /// Makes the directories and writes the limits. If any write fails, what was made is removed
    /// before the error is thrown: a bad value never leaves a cgroup behind.
    static func create(id: String, limits: ResourceLimits) throws -> Cgroup {
        var cgroup = Cgroup(id: id, version: try detectCgroupVersion())
        do {
            switch cgroup.version {
            case .v1: try cgroup.createV1(limits)
            case .v2: try cgroup.createV2(limits)
            }
        } catch {
            cgroup.remove()
            throw error
        }
        return cgroup
    }

    /// The cgroup of a container started earlier (by another runtime process), to remove it: the
    /// directories named `id` that exist under `mydocker/` in the hierarchies this step uses.
    static func existing(id: String) throws -> Cgroup {
        var cgroup = Cgroup(id: id, version: try detectCgroupVersion())
        var candidates = [cgroupRoot + "/" + cgroupParent + "/" + id]
        if cgroup.version == .v1 {
            let hierarchies = try findV1Hierarchies()
            candidates = try ["memory", "cpu", "cpuset"].map {
                try v1Hierarchy($0, in: hierarchies) + "/" + cgroupParent + "/" + id
            }
        }
        cgroup.directories = candidates.filter(isDirectory)
        return cgroup
    }

    // MARK: cgroup v1

    /// The controllers this step sets, each in its own hierarchy.
    private mutating func createV1(_ limits: ResourceLimits) throws {
        let hierarchies = try findV1Hierarchies()
        let memory = try makeV1Directory(controller: "memory", in: hierarchies)
        if let bytes = limits.memoryBytes {
            try writeFile(memory + "/memory.limit_in_bytes", String(bytes))
        }
        let cpu = try makeV1Directory(controller: "cpu", in: hierarchies)
        if let shares = limits.cpuShares {
            try writeFile(cpu + "/cpu.shares", String(shares))
        }
        let cpuset = try makeV1Directory(controller: "cpuset", in: hierarchies)
        // A new cpuset cgroup starts with no CPUs and no memory nodes, and a process cannot join
        // it until both are set: copy them from the parent (docker does the same).
        let parent = parentDirectory(of: cpuset)
        try writeFile(cpuset + "/cpuset.cpus", try limits.cpus ?? readValue(parent + "/cpuset.cpus"))
        try writeFile(cpuset + "/cpuset.mems", try readValue(parent + "/cpuset.mems"))
    }

    /// `mydocker/ID` in the hierarchy that has `controller`.
    private mutating func makeV1Directory(controller: String, in hierarchies: [String: String]) throws
        -> String
    {
        let hierarchy = try v1Hierarchy(controller, in: hierarchies)
        let parent = hierarchy + "/" + cgroupParent
        if !isDirectory(parent) {
            try makeDirectories(parent)
            if controller == "cpuset" {
                // The same empty-cpuset rule holds for our parent directory.
                try writeFile(parent + "/cpuset.cpus", try readValue(hierarchy + "/cpuset.cpus"))
                try writeFile(parent + "/cpuset.mems", try readValue(hierarchy + "/cpuset.mems"))
            }
        }
        let directory = parent + "/" + id
        removeLeftover(directory)
        guard mkdir(directory, 0o755) == 0 else { throw SyscallError("mkdir \(directory)") }
        directories.append(directory)
        return directory
    }

    // MARK: cgroup v2

    private mutating func createV2(_ limits: ResourceLimits) throws {
        let parent = cgroupRoot + "/" + cgroupParent
        if !isDirectory(parent) { try makeDirectories(parent) }
        // Controllers are switched on for the children of a cgroup, level by level from the root:
        // a limit file appears in mydocker/ID only if mydocker/ has the controller in its
        // subtree_control, and mydocker/ only if the root has it. Every level but the leaf, because
        // of the no-internal-process rule: a cgroup that hands controllers to its children may not
        // hold processes itself, so the container must sit in a leaf.
        for directory in [cgroupRoot, parent] {
            try writeFile(directory + "/" + subtreeControlFile, "+memory +cpu +cpuset")
        }
        let directory = parent + "/" + id
        removeLeftover(directory)
        guard mkdir(directory, 0o755) == 0 else { throw SyscallError("mkdir \(directory)") }
        directories.append(directory)
        if let bytes = limits.memoryBytes {
            try writeFile(directory + "/memory.max", String(bytes))
        }
        if let shares = limits.cpuShares {
            try writeFile(directory + "/cpu.weight", String(cpuWeight(fromShares: shares)))
        }
        if let cpus = limits.cpus {
            try writeFile(directory + "/cpuset.cpus", cpus)
        }
    }

    // MARK: joining and leaving

    /// Moves `pid` (and so every process it will start) into the cgroup, in every hierarchy.
    func add(pid: pid_t) throws {
        for directory in directories {
            try writeFile(directory + "/" + procsFile, String(pid))
        }
    }

    /// SIGKILL to every process listed in the cgroup.
    func killProcesses() {
        for directory in directories {
            let procs = (try? readFile(directory + "/" + procsFile)) ?? ""
            for pid in procs.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
        }
    }

    /// Removes the directories, leaf first. rmdir(2) is the only way to delete a cgroup, and it
    /// fails with EBUSY while a process is still inside; after PID 1 of the container has been
    /// waited for the PID namespace is empty, but the kernel may need a moment to say so.
    func remove() {
        for directory in directories.reversed() {
            var attempts = 0
            while rmdir(directory) != 0 && errno == EBUSY && attempts < 1000 {
                attempts += 1
                usleep(1_000)
            }
            if isDirectory(directory) { printError("\(SyscallError("rmdir \(directory)"))") }
        }
    }
}

/// A cgroup directory that already has our name was left by a runtime that was killed before it
/// could remove it (its container died with it: PR_SET_PDEATHSIG). The name is ours now, so the
/// empty directory goes; if processes were still inside, rmdir fails and so will the mkdir after.
func removeLeftover(_ directory: String) {
    if isDirectory(directory) { rmdir(directory) }
}

/// cgroup v1's cpu.shares (2..262144, default 1024) mapped onto v2's cpu.weight (1..10000,
/// default 100), with the same formula as runc, so `-cpushare 512` means the same on both.
func cpuWeight(fromShares shares: UInt64) -> UInt64 {
    1 + ((shares - 2) * 9999) / 262142
}

/// Where each v1 controller's hierarchy is mounted, from one read of /proc/self/mountinfo:
/// `35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory`. On some hosts cpu and
/// cpuacct share one hierarchy, mounted at /sys/fs/cgroup/cpu,cpuacct.
func findV1Hierarchies() throws -> [String: String] {
    var hierarchies: [String: String] = [:]
    for mount in try readMountInfo() where mount.fsType == "cgroup" {
        for option in mount.superOptions {
            hierarchies[option] = mount.mountPoint
        }
    }
    return hierarchies
}

func v1Hierarchy(_ controller: String, in hierarchies: [String: String]) throws -> String {
    guard let hierarchy = hierarchies[controller] else {
        throw SyscallError("find the cgroup v1 hierarchy of \(controller)", errno: ENOENT)
    }
    return hierarchy
}

func parentDirectory(of path: String) -> String {
    String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
}

/// A kernel file's value without its trailing newline.
func readValue(_ path: String) throws -> String {
    var text = try readFile(path)
    while text.last == "\n" { text.removeLast() }
    return text
}

// MARK: parsing the flags
