// step04: as step03, but the command reaches `init` over a pipe (fd 3) as NUL-separated arguments,
// not on init's command line: spaces, quotes and empty arguments arrive unchanged.
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
