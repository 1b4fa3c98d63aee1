// step01: run a command in its own UTS namespace, so it can change the hostname without touching
// the host's. Usage: step01 [CMD [ARG...]]  (default /bin/sh)
import ContainerSupport

let spec = CommandSpec(
    name: "",
    arguments: "[CMD [ARG...]]",
    summary: "Run CMD (default /bin/sh) in a new UTS namespace: its hostname is its own."
)

runMain {
    let parsed = try spec.parse(Array(CommandLine.arguments.dropFirst()))
    try requireRoot()
    let command = parsed.positionals.isEmpty ? ["/bin/sh"] : parsed.positionals
    try execInNewUTSNamespace(command)
}
