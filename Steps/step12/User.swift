import ContainerSupport
import Glibc

// `-u UID[:GID]` or `--user NAME[:GROUP]`: the command runs as that user, with no capabilities
// left. A name means what the image says it means: it is looked up in the container's own
// /etc/passwd and /etc/group (after pivot_root), never the host's, whose user 1000 is somebody
// else. A number needs no entry at all, as in docker.

/// The user the command runs as: uid, primary gid and the supplementary groups (the primary first).
struct ContainerUser {
    var uid: uid_t = 0
    var gid: gid_t = 0
    var groups: [gid_t] = [0]
}

/// Checks a `-u` value's shape before anything is started; the names are resolved by init.
func validateUserSpec(_ spec: String) throws {
    let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
    guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
        throw UsageError("invalid user \(quotedValue(spec)) (use UID, NAME, UID:GID or NAME:GROUP)")
    }
}

/// One line of /etc/passwd or /etc/group, split at its colons.
func databaseEntries(_ path: String) -> [[String]] {
    guard let text = try? readFile(path) else { return [] }
    return text.split(separator: "\n").map {
        $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    }
}

/// A uid or gid in ASCII digits only (`+5` is a name). Not 4294967295: to setresuid(2) that is
/// (uid_t)-1, "leave this id as it is", and the command would stay root.
func numericID(_ text: String) -> UInt32? { decimal(Substring(text)).flatMap { $0 == UInt32.max ? nil : $0 } }

/// Resolves `spec` against the container's /etc/passwd and /etc/group (init side, after
/// pivot_root). No spec is root, as the image's default user is here.
func resolveUser(_ spec: String?) throws -> ContainerUser {
    guard let spec else { return ContainerUser() }
    let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    let passwd = databaseEntries("/etc/passwd").filter { $0.count >= 4 }
    let group = databaseEntries("/etc/group").filter { $0.count >= 3 }
    var user = ContainerUser()
    // A number is a uid even when no entry has it; a name must have one.
    let entry = passwd.first { $0[0] == parts[0] } ?? passwd.first { $0[2] == parts[0] }
    if let uid = numericID(parts[0]) {
        user.uid = uid
    } else if let entry, let uid = numericID(entry[2]) {
        user.uid = uid
    } else {
        throw Failure("unable to find user \(parts[0]): no matching entries in /etc/passwd")
    }
    user.gid = entry.flatMap { numericID($0[3]) } ?? 0
    if parts.count == 2 {
        if let gid = numericID(parts[1]) {
            user.gid = gid
        } else if let entry = group.first(where: { $0[0] == parts[1] }), let gid = numericID(entry[2]) {
            user.gid = gid
        } else {
            throw Failure("unable to find group \(parts[1]): no matching entries in /etc/group")
        }
    }
    // The supplementary groups: the primary one, then every group that lists the user's name. With
    // none set, the command would keep init's, root's groups.
    user.groups = [user.gid]
    if let name = entry?[0] {
        for line in group where line.count > 3 && line[3].split(separator: ",").contains(Substring(name)) {
            if let gid = numericID(line[2]), !user.groups.contains(gid) { user.groups.append(gid) }
        }
    }
    return user
}
