import Glibc

/// Where the runtime keeps its state: one root, `MYDOCKER_ROOT` (default /var/lib/mydocker), so that
/// tests and parallel classes never collide.
public enum Paths {
    public static var root: String {
        if let value = getenv("MYDOCKER_ROOT"), value.pointee != 0 {
            return String(cString: value)
        }
        return "/var/lib/mydocker"
    }

    /// Image tarballs (`NAME.tar`) and their unpacked read-only trees (`NAME/`).
    public static var images: String { root + "/images" }

    /// Writable container layers: `overlay/CONTAINER/{upper,work,merged}`.
    public static var overlay: String { root + "/overlay" }

    /// Container records and logs: `containers/CONTAINER/{config.json,container.log}`.
    public static var containers: String { root + "/containers" }

    /// Checks `MYDOCKER_ROOT` and, if it exists, makes it reachable by root alone.
    ///
    /// The root's path becomes part of overlay mount options (`,` separates options, `:` lower
    /// layers, `\` escapes) and is compared with /proc/self/mountinfo, which prints mount points
    /// canonical and with space, tab, newline and backslash escaped (`\040`). A root that needs
    /// either would inject options or slip past those checks, so it is refused, as is a path with
    /// `.`/`..` components or a symlink in it.
    ///
    /// The tree holds images unpacked by root (setuid files survive tar) and every container's
    /// writable layer (whatever root in a container wrote there): open to other users, any of them
    /// could run a setuid-root file from it. Docker keeps /var/lib/docker at 0710 for this reason.
    /// A root that does not exist yet is left alone: it cannot hold an image, so the command fails
    /// before it writes anything (rootfs-tools makes it, 0700).
    public static func validateRoot() throws {
        let path = root
        guard path.hasPrefix("/") else {
            throw UsageError("MYDOCKER_ROOT must be an absolute path, got '\(path)'")
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+@")
        if let bad = path.first(where: { !allowed.contains($0) }) {
            throw UsageError(
                "MYDOCKER_ROOT \(path.debugDescription) contains \(String(bad).debugDescription) "
                    + "(allowed: letters, digits and / . _ - + @; the path becomes an overlay mount option)")
        }
        try prepareRoot(path)
    }

    private static func prepareRoot(_ path: String) throws {
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard path != "/", !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw UsageError(
                "MYDOCKER_ROOT must be a plain absolute path below / (no //, . or .. and no trailing /), got '\(path)'"
            )
        }
        var info = stat()
        guard lstat(path, &info) == 0 || errno != ENOENT else { return }
        guard let resolved = realpath(path, nil) else { throw SyscallError("realpath \(path)") }
        defer { free(resolved) }
        let canonical = String(cString: resolved)
        guard canonical == path else {
            throw UsageError("MYDOCKER_ROOT must not go through a symlink: '\(path)' is '\(canonical)'")
        }
        guard lstat(path, &info) == 0 else { throw SyscallError("lstat \(path)") }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw UsageError("MYDOCKER_ROOT '\(path)' is not a directory")
        }
        guard info.st_uid == 0 else {
            throw UsageError(
                "MYDOCKER_ROOT '\(path)' belongs to uid \(info.st_uid), not root: that user could change the runtime's files"
            )
        }
        // A root made by an older version of the runtime (0755) is tightened here.
        if info.st_mode & 0o077 != 0 {
            guard chmod(path, 0o700) == 0 else { throw SyscallError("chmod 700 \(path)") }
        }
    }
}
