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

    /// Refuses a relative `MYDOCKER_ROOT`: mounts and records would land wherever the user stands.
    public static func validateRoot() throws {
        guard root.hasPrefix("/") else {
            throw UsageError("MYDOCKER_ROOT must be an absolute path, got '\(root)'")
        }
    }
}
