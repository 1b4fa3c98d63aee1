import Glibc

/// One line of /proc/self/mountinfo (proc(5)):
///
///     36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
///     (1)(2) (3)   (4)     (5)         (6)      (7)  (8) (9)    (10)         (11)
///
/// Fields 1-6 are fixed, then come zero or more optional fields (7), a lone `-` (8), the filesystem
/// type (9), the source (10) and the superblock's own options (11). The paths are kept as the
/// kernel prints them: a space, tab, newline or backslash in one is an octal escape (`\040`).
public struct MountInfoEntry {
    /// Field 4: the directory of the filesystem that is the root of this mount.
    public let root: String
    /// Field 5: where it is mounted.
    public let mountPoint: String
    /// Field 6: the per-mount options (`rw`, `nosuid`, ...).
    public let mountOptions: [String]
    /// Field 9: `ext4`, `overlay`, `cgroup`, `cgroup2`, ...
    public let fsType: String
    /// Field 10.
    public let source: String
    /// Field 11: the filesystem's own options (a cgroup v1 hierarchy's controllers, an overlay's
    /// lowerdir/upperdir/workdir).
    public let superOptions: [String]
}

/// Every mount of this process's mount namespace, from one read of /proc/self/mountinfo. The
/// lines are split as bytes: String's own split walks grapheme clusters, about ten times slower,
/// and a container start reads this file several times (cgroups, removal of the layer, init).
public func readMountInfo() throws -> [MountInfoEntry] {
    let text = try readFile("/proc/self/mountinfo")
    var entries: [MountInfoEntry] = []
    for line in text.utf8.split(separator: UInt8(ascii: "\n")) {
        let fields = line.split(separator: UInt8(ascii: " "))
        guard let dash = fields.firstIndex(where: { $0.elementsEqual("-".utf8) }),
            dash >= 6, fields.count >= dash + 4
        else { continue }
        func string(_ field: Int) -> String { String(decoding: fields[field], as: UTF8.self) }
        func options(_ field: Int) -> [String] {
            fields[field].split(separator: UInt8(ascii: ",")).map { String(decoding: $0, as: UTF8.self) }
        }
        entries.append(
            MountInfoEntry(
                root: string(3), mountPoint: string(4), mountOptions: options(5), fsType: string(dash + 1),
                source: string(dash + 2), superOptions: options(dash + 3)))
    }
    return entries
}
