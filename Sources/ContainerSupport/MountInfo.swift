import Glibc

/// One line of /proc/self/mountinfo (proc(5)):
///
///     36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
///     (1)(2) (3)   (4)     (5)         (6)      (7)  (8) (9)    (10)         (11)
///
/// Fields 1-6 are fixed, then come zero or more optional fields (7), a lone `-` (8), the filesystem
/// type (9), the source (10) and the superblock's own options (11). The paths are kept as the
/// kernel prints them: a space, tab, newline or backslash in one is an octal escape (`\040`).
/// Only the fields the steps read are kept.
public struct MountInfoEntry {
    /// Field 5: where it is mounted.
    public let mountPoint: String
    /// Field 9: `ext4`, `overlay`, `cgroup`, `cgroup2`, ...
    public let fsType: String
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
        func string(_ bytes: Substring.UTF8View) -> String { String(decoding: bytes, as: UTF8.self) }
        entries.append(
            MountInfoEntry(
                mountPoint: string(fields[4]), fsType: string(fields[dash + 1]),
                superOptions: fields[dash + 3].split(separator: UInt8(ascii: ",")).map(string)))
    }
    return entries
}
