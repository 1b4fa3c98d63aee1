import Glibc

/// A failed system call: what we were doing (`stage`) and the errno the kernel gave.
///
/// Build it in the `else` of the `guard` that checks the call, before anything else can overwrite
/// errno: `guard mount(...) == 0 else { throw SyscallError("mount proc on /proc") }`.
public struct SyscallError: Error, CustomStringConvertible {
    public let stage: String
    public let errno: Int32

    public init(_ stage: String, errno: Int32 = Glibc.errno) {
        self.stage = stage
        self.errno = errno
    }

    /// `mount proc on /proc: Operation not permitted (EPERM)`
    public var description: String {
        "\(stage): \(String(cString: strerror(errno))) (\(errnoName(errno)))"
    }
}

/// Bad flags, specs or names: the user's mistake, not the kernel's, so there is no errno.
public struct UsageError: Error, CustomStringConvertible {
    public let description: String

    public init(_ message: String) {
        description = message
    }
}

/// A failure that has no errno: a helper program that exited non-zero, a state that forbids the
/// operation (a second container in a one-container workspace).
public struct Failure: Error, CustomStringConvertible {
    public let description: String

    public init(_ message: String) {
        description = message
    }
}

/// The symbolic name of an errno value, the word people search for.
public func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO",
        ENXIO: "ENXIO", E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD",
        EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY",
        EEXIST: "EEXIST", EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
        EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY", ETXTBSY: "ETXTBSY",
        EFBIG: "EFBIG", ENOSPC: "ENOSPC", ESPIPE: "ESPIPE", EROFS: "EROFS", EMLINK: "EMLINK",
        EPIPE: "EPIPE", ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS",
        ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", ENOTSUP: "ENOTSUP", EOVERFLOW: "EOVERFLOW",
        EUSERS: "EUSERS", ENOTCONN: "ENOTCONN", ETIMEDOUT: "ETIMEDOUT", EALREADY: "EALREADY",
        ESTALE: "ESTALE", EDQUOT: "EDQUOT", ECANCELED: "ECANCELED",
    ]
    return names[code] ?? "errno \(code)"
}
