import Glibc

// Thin file helpers over open/read/write: every failure is a SyscallError naming the path.

/// Writes `value` to `path`, creating or truncating it. Kernel files (cgroup limits) take the
/// value in one write(2), and reject it there, so the error is reported from that call.
public func writeFile(_ path: String, _ value: String, mode: mode_t = 0o644) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw SyscallError("open \(path)") }
    defer { close(fd) }
    var bytes = Array(value.utf8)
    let stage = "write \(value.count > 40 ? "\(bytes.count) bytes" : value) to \(path)"
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw SyscallError(stage) }
        offset += n
    }
}

/// Reads a whole file (also /proc and /sys files, whose size stat reports as 0).
public func readFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SyscallError("open \(path)") }
    defer { close(fd) }
    return try readAll(fd, stage: "read \(path)")
}

/// Reads from `fd` until end of file.
public func readAll(_ fd: Int32, stage: String) throws -> String {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw SyscallError(stage) }
        if n == 0 { break }
        result.append(contentsOf: buffer[..<n])
    }
    return String(decoding: result, as: UTF8.self)
}

public func fileExists(_ path: String) -> Bool {
    access(path, F_OK) == 0
}

public func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}

/// `mkdir -p`: creates `path` and its missing parents. Tries the path itself first and walks up
/// only on ENOENT, so the usual case (the parent exists) is one system call.
public func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
    if mkdir(path, mode) == 0 { return }
    switch errno {
    case EEXIST:
        guard isDirectory(path) else { throw SyscallError("mkdir \(path)", errno: ENOTDIR) }
    case ENOENT:
        let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        guard !parent.isEmpty, parent != path else { throw SyscallError("mkdir \(path)") }
        try makeDirectories(parent, mode: mode)
        guard mkdir(path, mode) == 0 || (errno == EEXIST && isDirectory(path)) else {
            throw SyscallError("mkdir \(path)")
        }
    default:
        throw SyscallError("mkdir \(path)")
    }
}

/// The names in a directory, without `.` and `..`.
public func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw SyscallError("opendir \(path)") }
    defer { closedir(dir) }
    return entryNames(dir).sorted()
}

/// `rm -rf` that refuses to touch anything still mounted below `path`: a bind mount (a volume, say)
/// would otherwise lead the walk into the host's own files. Mount points are looked up in
/// /proc/self/mountinfo (a bind mount of a directory on the same filesystem has the same st_dev,
/// so the device check during the walk alone would not notice it).
///
/// The walk below `path` goes by directory descriptors, never by path: root in a container can
/// swap a directory in its upper layer for a symlink at any moment, and a walk by path that had
/// just seen a directory there would follow the symlink and delete the host's files behind it.
/// Each directory is opened with O_NOFOLLOW|O_DIRECTORY, and its entries are removed with
/// unlinkat(2) relative to that descriptor, so a symlink is only ever removed itself.
public func removeTree(_ path: String) throws {
    var top = stat()
    guard lstat(path, &top) == 0 else {
        if errno == ENOENT { return }
        throw SyscallError("lstat \(path)")
    }
    let below = path + "/"
    let mounted = try readMountInfo().first { $0.mountPoint == path || $0.mountPoint.hasPrefix(below) }
    if let mount = mounted {
        throw SyscallError("remove \(path): \(mount.mountPoint) is still mounted", errno: EBUSY)
    }
    guard (top.st_mode & S_IFMT) == S_IFDIR else {
        guard unlink(path) == 0 || errno == ENOENT else { throw SyscallError("unlink \(path)") }
        return
    }
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
        if errno == ENOENT { return }
        throw SyscallError("open \(path)")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw SyscallError("fstat \(path)") }
    try removeContents(of: fd, path: path, device: info.st_dev)
    guard rmdir(path) == 0 || errno == ENOENT else { throw SyscallError("rmdir \(path)") }
}

/// Empties the directory open on `fd` (`path` only names it in errors).
private func removeContents(of fd: Int32, path: String, device: dev_t) throws {
    for name in try directoryEntries(of: fd, path: path) {
        try removeEntry(name, in: fd, path: path + "/" + name, device: device)
    }
}

/// Removes one entry of the directory open on `parent`. unlinkat(2) without AT_REMOVEDIR removes
/// anything but a directory (Linux says EISDIR for one), a symlink included. A directory is opened
/// with O_NOFOLLOW first; if it has been swapped for something else since, that fails with
/// ENOTDIR or ELOOP and we try again. Entries that vanish meanwhile (another process removing the
/// same tree) are not errors.
private func removeEntry(_ name: String, in parent: Int32, path: String, device: dev_t) throws {
    for _ in 0..<100 {
        if unlinkat(parent, name, 0) == 0 || errno == ENOENT { return }
        guard errno == EISDIR else { throw SyscallError("unlinkat \(path)") }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOTDIR || errno == ELOOP { continue }
            if errno == ENOENT { return }
            throw SyscallError("open \(path)")
        }
        defer { close(fd) }
        // The device of what was opened, not of the name: a mount point opens as the root of
        // whatever is mounted there.
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SyscallError("fstat \(path)") }
        guard info.st_dev == device else {
            throw SyscallError("remove \(path) (still mounted)", errno: EBUSY)
        }
        try removeContents(of: fd, path: path, device: device)
        if unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT { return }
        // Swapped for something else after it was emptied: go round again.
        guard errno == ENOTDIR else { throw SyscallError("rmdir \(path)") }
    }
    throw SyscallError("remove \(path) (keeps changing)", errno: EBUSY)
}

/// The names in the directory open on `fd`, read through a duplicate: closedir(3) closes the
/// descriptor that fdopendir(3) was given, and `fd` is still needed for unlinkat.
private func directoryEntries(of fd: Int32, path: String) throws -> [String] {
    let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
    guard copy >= 0 else { throw SyscallError("dup \(path)") }
    guard let dir = fdopendir(copy) else {
        let error = SyscallError("fdopendir \(path)")
        close(copy)
        throw error
    }
    defer { closedir(dir) }
    return entryNames(dir)
}

/// Every name readdir(3) gives for `dir`, without `.` and `..`.
private func entryNames(_ dir: OpaquePointer) -> [String] {
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
