import ContainerSupport
import Glibc

// Routing alone gets a container's packets to the host and out of its other interfaces, but
// nobody outside knows the way back to 10.213.0.0/24, and nobody outside can address a container
// at all. Netfilter's NAT fixes both (nft(8)): outgoing connections get the host's address as their
// source (masquerade) and the kernel's connection tracking translates the replies back; a published
// port rewrites the destination of what arrives for HOST:PORT to CONTAINER:PORT (dnat).
//
// All of it lives in ONE nftables table per network, named after the network's bridge, which
// holds its own chains hooked into the kernel's. We never add a rule to anyone else's table and
// never change a chain's policy: deleting our table takes every rule, map and counter with it, and
// leaves the host's firewall as it was. The table is written with `nft -f -`, the ruleset on stdin,
// applied by the kernel as one transaction: all of it or nothing.

/// The network's table. The two maps hold the published ports, HOST PORT : CONTAINER ADDRESS .
/// CONTAINER PORT; containers add and remove elements, the rules never change.
func firewallRuleset(_ network: NetworkRecord) -> String {
    let bridge = "\"\(network.bridge)\""
    let comment = String("mydocker network \(network.name) in \(Paths.root)".prefix(120))
    return """
        table ip \(network.table) {
            comment "\(comment)"
            map tcp_ports { type inet_service : ipv4_addr . inet_service; }
            map udp_ports { type inet_service : ipv4_addr . inet_service; }

            # Published ports: what is addressed to one of the host's own addresses (fib ... local,
            # 127.0.0.1 included) and a published port goes to the container instead.
            chain published {
                dnat ip to tcp dport map @tcp_ports
                dnat ip to udp dport map @udp_ports
            }
            # From other machines and from containers (they reach the host through the gateway).
            chain prerouting {
                type nat hook prerouting priority dstnat; policy accept;
                fib daddr type local jump published
            }
            # From the host itself: its own packets never pass prerouting (the name dstnat is
            # only defined for prerouting; -100 is the same number).
            chain output {
                type nat hook output priority -100; policy accept;
                fib daddr type local jump published
            }
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                # Leaving the network for anywhere else: the host's address as the source.
                ip saddr \(network.subnet) oifname != \(bridge) masquerade
                # 127.0.0.1:PORT from the host: the container must answer the gateway, not its own
                # loopback.
                oifname \(bridge) ip saddr 127.0.0.0/8 masquerade
                # A container reaching a published port (its own: hairpin, or a neighbour's) through
                # the host: without this the answer would skip the host and its translation.
                oifname \(bridge) ip saddr \(network.subnet) ct status dnat masquerade
            }
            # Networks are isolated: nothing is routed from this bridge into another network's
            # bridge, unless it is a published port (translated above).
            chain forward {
                type filter hook forward priority filter; policy accept;
                iifname \(bridge) oifname "mdb*" oifname != \(bridge) ct status & dnat == 0 drop
            }
        }

        """
}

/// Creates the network's table. A table of the same name left by a killed runtime is replaced:
/// `add` then `delete` empties the name whether or not it existed, in the same transaction.
func createFirewall(_ network: NetworkRecord) throws {
    let script =
        "add table ip \(network.table)\ndelete table ip \(network.table)\n" + firewallRuleset(network)
    try runNft(script, stage: "create nftables table \(network.table)")
}

/// Deletes the table, all of it; no error when it is already gone.
func deleteFirewall(_ network: NetworkRecord) throws {
    let script = "add table ip \(network.table)\ndelete table ip \(network.table)\n"
    try runNft(script, stage: "delete nftables table \(network.table)")
}

/// One element per `-p`: `add element ip TABLE tcp_ports { 8080 : 10.213.0.2 . 80 }`. A host port
/// that is in the map already makes the whole transaction fail, with nothing added.
func publishPorts(_ ports: [PortMapping], to address: IPv4, in network: NetworkRecord) throws {
    guard !ports.isEmpty else { return }
    let script = ports.map { port in
        "add element ip \(network.table) \(port.proto)_ports { \(port.hostPort) : \(address) . \(port.containerPort) }\n"
    }.joined()
    try runNft(script, stage: "publish ports \(ports.map(\.description).joined(separator: ","))")
}

/// Removes a container's elements. Deleting an element that is not there fails the transaction;
/// adding it first (a no-op when it is there with the same value) makes the removal safe to repeat.
func unpublishPorts(_ ports: [PortMapping], from address: IPv4, in network: NetworkRecord) throws {
    guard !ports.isEmpty else { return }
    let script = ports.map { port in
        let element = "\(port.proto)_ports { \(port.hostPort) : \(address) . \(port.containerPort) }"
        return "add element ip \(network.table) \(element)\ndelete element ip \(network.table) \(element)\n"
    }.joined()
    try runNft(script, stage: "unpublish ports \(ports.map(\.description).joined(separator: ","))")
}

/// `nft -f -` with the script on stdin. A missing nft or kernel support is said plainly.
func runNft(_ script: String, stage: String) throws {
    do {
        try runProgram(["nft", "-f", "-"], stage: stage, input: script)
    } catch let error as SyscallError where error.errno == ENOENT {
        throw Failure("\(stage): nft not found (install nftables: sudo apt-get install nftables)")
    } catch let error as Failure where error.description.contains("not supported") {
        throw Failure(
            "\(error.description) (the kernel lacks nftables NAT: modprobe nf_tables nft_chain_nat nft_masq nft_fib_ipv4)"
        )
    }
}
