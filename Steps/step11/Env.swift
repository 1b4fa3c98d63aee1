import ContainerSupport
import Glibc

// A process gets its environment from execve(2): the third argument, a list of KEY=VALUE strings,
// becomes its `environ`. Until now the container simply inherited the runtime's (the host user's
// PATH, SUDO_USER, whatever the shell had). Now it gets a clean default plus what `-e` asks for, as
// docker does. `exec` has no parent to inherit from inside the container, so it reads the
// container's environment where the kernel keeps it: /proc/PID/environ, the block that was passed
// to the container's execve.

/// What every container starts with. PATH covers busybox's applet directories.
func defaultEnvironment(hostname: String, tty: Bool) -> [String] {
    var environment = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
        "HOSTNAME=\(hostname)",
    ]
    if tty { environment.append("TERM=xterm") }
    return environment
}

/// The container's whole environment: the defaults, then `-e` on top.
func initialEnvironment(_ options: RunOptions, name: String) -> [String] {
    mergeEnvironment(defaultEnvironment(hostname: name, tty: options.tty), options.environment)
}

/// `-e KEY=VALUE` sets KEY; `-e KEY` copies the host's value of KEY and is skipped when the host
/// has none, as in docker. A value may contain anything, `=` and spaces included.
func parseEnvironment(_ specs: [String]) throws -> [String] {
    try specs.compactMap { spec in
        let name = spec.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard !name.isEmpty else {
            throw UsageError("invalid environment variable '\(spec)': the name is empty")
        }
        guard !name.contains(where: { $0 == " " || $0 == "\0" }) else {
            throw UsageError("invalid environment variable '\(spec)': the name contains a space")
        }
        // The runtime reads MYDOCKER_ROOT, MYDOCKER_TRACE and the like from its own environment:
        // a container has no business setting them, and no tool that trusts them should ever see
        // one a user slipped in.
        guard !name.hasPrefix(reservedEnvironmentPrefix) else {
            throw UsageError(
                "invalid environment variable '\(spec)': names starting with \(reservedEnvironmentPrefix) are reserved for the runtime"
            )
        }
        if spec.contains("=") { return spec }
        return getenv(String(name)).map { "\(name)=\(String(cString: $0))" }
    }
}

/// The prefix of every variable the runtime itself reads.
let reservedEnvironmentPrefix = "MYDOCKER_"

/// Later entries win, as for docker's -e over the image's defaults: one entry per name, in the
/// order the names first appeared.
func mergeEnvironment(_ base: [String], _ overrides: [String]) -> [String] {
    var order: [Substring] = []
    var values: [Substring: String] = [:]
    for entry in base + overrides {
        let name = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
        if values[name] == nil { order.append(name) }
        values[name] = entry
    }
    return order.compactMap { values[$0] }
}

/// The container's environment as its PID 1 received it: NUL-separated KEY=VALUE entries.
func containerEnvironment(pid: Int32) throws -> [String] {
    try readFile("/proc/\(pid)/environ").split(separator: "\0").map(String.init)
}

/// MYDOCKER_TRACE goes on to init, so that its stages are traced too (ContainerSupport/Trace.swift).
/// It is the runtime's own variable, passed to init only: the command never sees it.
func traceEnvironment() -> [String] {
    getenv("MYDOCKER_TRACE").map { ["MYDOCKER_TRACE=\(String(cString: $0))"] } ?? []
}
