// step07: images: `run` takes the image to start from, and `commit IMAGE` saves the running
// container's files as a new image.
import ContainerSupport

let usage = """
    Usage: \(toolName) COMMAND

    Commands:
      run [-ti] [-m SIZE] [-cpushare N] [-cpuset LIST] [-v SRC:DST]... IMAGE CMD [ARG...]
                               run CMD in a new container made from IMAGE
      commit [-f] IMAGE        save the running container's files as IMAGE
    """

runMain {
    let arguments = Array(CommandLine.arguments.dropFirst())
    switch arguments.first {
    case "run":
        return try run(Array(arguments.dropFirst()))
    case "commit":
        return try commit(Array(arguments.dropFirst()))
    case "init":
        try initContainer(Array(arguments.dropFirst()))
    case "--help", "-h":
        printOutput(usage + "\n")
        return 0
    case nil:
        throw UsageError("no command given (try: \(toolName) run -ti busybox sh)")
    case let other?:
        throw UsageError("unknown command '\(other)' (try: \(toolName) --help)")
    }
}
