import Glibc

/// A NULL-terminated `char *[]` for execve(2) and friends, built before a fork or clone so that the
/// child never has to allocate.
public final class CStringArray {
    public let pointers: [UnsafeMutablePointer<CChar>?]

    public init(_ strings: [String]) {
        pointers = strings.map { strdup($0) } + [nil]
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }

    /// The array as execve(2) wants it. Valid while `self` is alive.
    public var argv: UnsafePointer<UnsafeMutablePointer<CChar>?> {
        pointers.withUnsafeBufferPointer { $0.baseAddress! }
    }
}
