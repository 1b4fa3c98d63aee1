// step12: hardening: the container's root gets only what it needs (docker's 14 capabilities, a
// seccomp filter, a device cgroup, masked /proc paths, a read-only cgroup namespace, -u USER).
import ContainerSupport

let usage = """
    Usage: \(toolName) COMMAND

    Commands:
      run [-ti|-d] [--name NAME] [-e KEY=VALUE]... [-m SIZE] [-cpushare N] [-cpuset LIST]
          [-v SRC:DST]... [--net NAME|none] [-p HOST:CONTAINER[/udp]]...
          [-u USER[:GROUP]] [--cap-add CAP]... [--cap-drop CAP]...
          [--privileged] [--security-opt OPT]... [--pids-limit N] IMAGE CMD [ARG...]
                               run CMD in a new container made from IMAGE
      exec [-ti] [-e KEY=VALUE]... CONTAINER CMD [ARG...]
                               run CMD inside a running container
      ps [-a]                  list containers
      logs CONTAINER           print a detached container's output
      stop [-t SECONDS] CONTAINER
                               stop a container (SIGTERM, then SIGKILL)
      rm [-f] CONTAINER        remove a container
      commit [-f] CONTAINER IMAGE
                               save a container's files as IMAGE
      network create [--subnet CIDR] NAME | network ls | network rm NAME
                               manage networks
    """

runMain {
    let arguments = Array(CommandLine.arguments.dropFirst())
    switch arguments.first {
    case "run":
        return try run(Array(arguments.dropFirst()))
    case "exec":
        return try exec(Array(arguments.dropFirst()))
    case "ps":
        return try ps(Array(arguments.dropFirst()))
    case "logs":
        return try logs(Array(arguments.dropFirst()))
    case "stop":
        return try stop(Array(arguments.dropFirst()))
    case "rm":
        return try rm(Array(arguments.dropFirst()))
    case "commit":
        return try commit(Array(arguments.dropFirst()))
    case "network":
        return try network(Array(arguments.dropFirst()))
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
