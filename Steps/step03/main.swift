// step03: `run` starts a container in new namespaces and in a cgroup of its own, with memory, CPU
// share and cpuset limits; `init` waits until it is in the cgroup, then becomes the user's command.
import ContainerSupport

let usage = """
    Usage: \(toolName) COMMAND

    Commands:
      run [-ti] [-m SIZE] [-cpushare N] [-cpuset LIST] CMD [ARG...]
                               run CMD in a new container, with limits
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
