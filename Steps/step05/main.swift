// step05: the container gets its own root filesystem: the busybox image as a read-only overlay
// lower layer, a writable layer on top, pivot_root into it, and fresh /proc, /sys and /dev.
import ContainerSupport

let usage = """
    Usage: \(toolName) COMMAND

    Commands:
      run [-ti] [-m SIZE] [-cpushare N] [-cpuset LIST] CMD [ARG...]
                               run CMD in a new busybox container, with limits
    """

runMain {
    let arguments = Array(CommandLine.arguments.dropFirst())
    switch arguments.first {
    case "run":
        return try run(Array(arguments.dropFirst()))
    case "init":
        try initContainer(Array(arguments.dropFirst()))
    case "--help", "-h":
        printOutput(usage + "\n")
        return 0
    case nil:
        throw UsageError("no command given (try: \(toolName) run -ti sh)")
    case let other?:
        throw UsageError("unknown command '\(other)' (try: \(toolName) --help)")
    }
}
