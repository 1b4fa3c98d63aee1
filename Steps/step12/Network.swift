import ContainerSupport
import FoundationEssentials
import Glibc

// Until now a container had a network namespace of its own and nothing in it but a loopback device
// that was down. Now it gets a network, the way docker's default bridge network works:
//   - a bridge on the host (a virtual switch) with the network's first address, the gateway;
//   - per container a veth pair, a virtual cable: one end plugged into the bridge, the other end
//     born inside the container's namespace as eth0, with an address from the network's subnet
//     and a default route via the gateway;
//   - NAT rules in an nftables table of our own (Firewall.swift): outgoing traffic leaves with the
//     host's address, and published ports (-p) lead in.
// Links, addresses and routes are made through rtnetlink (Netlink.swift). Which addresses are taken
// is written down in one file per network, networks/NAME.json, changed only under a lock.

let networkSpec = CommandSpec(
    name: "network",
    arguments: "create [--subnet CIDR] NAME | ls | rm NAME",
    summary: "Manage networks: a bridge, a subnet and the NAT rules of its containers.",
    flags: [.value("--subnet", valueName: "CIDR", help: "the network's addresses, e.g. 10.213.7.0/24")]
)

/// The network `run` uses when no --net is given, created on first use.
let defaultNetworkName = "bridge"
/// Its subnet: private (RFC 1918), and away from docker's 172.17.0.0/16 and podman's 10.88.0.0/16.
let defaultSubnet = "10.213.0.0/24"

// MARK: addresses

/// An IPv4 address as a number, so that subnets are arithmetic.
struct IPv4: Comparable, CustomStringConvertible {
    let value: UInt32

    init(value: UInt32) { self.value = value }

    init(bytes: [UInt8]) {
        value = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Exactly four decimal numbers 0-255, dot-separated.
    init?(_ text: Substring) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let byte = UInt8(part) else {
                return nil
            }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    /// Network byte order, as netlink carries addresses.
    var bytes: [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) } }
    var description: String { bytes.map(String.init).joined(separator: ".") }
    static func < (a: IPv4, b: IPv4) -> Bool { a.value < b.value }
}

/// A subnet such as 10.213.0.0/24: its first address names the network, its last is the broadcast
/// address, the one after the first is our gateway. None of those three is ever given to a
/// container.
struct Subnet: CustomStringConvertible {
    let network: IPv4
    let prefixLength: UInt8

    init(network: IPv4, prefixLength: UInt8) {
        self.prefixLength = prefixLength
        self.network = IPv4(value: network.value & Subnet.mask(prefixLength))
    }

    static func mask(_ length: UInt8) -> UInt32 { length == 0 ? 0 : UInt32.max << (32 - UInt32(length)) }

    /// `--subnet CIDR`: a network address (the host bits zero) with a prefix of 8 to 29, so that
    /// there is room for the gateway and at least a few containers.
    static func parse(_ text: String) throws -> Subnet {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4(parts[0]), let length = UInt8(parts[1]),
            parts[1].count <= 2
        else {
            throw UsageError("invalid subnet '\(text)': use an IPv4 CIDR such as 10.213.7.0/24")
        }
        guard (8...29).contains(length) else {
            throw UsageError("invalid subnet '\(text)': the prefix length must be 8 to 29")
        }
        let subnet = Subnet(network: address, prefixLength: length)
        guard subnet.network == address else {
            throw UsageError("invalid subnet '\(text)': \(address) is not its network address (\(subnet))")
        }
        return subnet
    }

    var broadcast: IPv4 { IPv4(value: network.value | ~Subnet.mask(prefixLength)) }
    var gateway: IPv4 { IPv4(value: network.value + 1) }
    var description: String { "\(network)/\(prefixLength)" }

    func contains(_ address: IPv4) -> Bool {
        address.value & Subnet.mask(prefixLength) == network.value
    }

    /// Two subnets overlap when one contains the other's network address.
    func overlaps(_ other: Subnet) -> Bool { contains(other.network) || other.contains(network) }
}

// MARK: the network file

/// networks/NAME.json: the network and the addresses its containers hold, keyed by container ID.
struct NetworkRecord: Codable {
    struct Allocation: Codable {
        var address: String
        /// The container's name, its directory under containers/: gone means the address is free.
        var container: String
    }

    var name: String
    var subnet: String
    var gateway: String
    var bridge: String
    var table: String
    var created: String
    var allocations: [String: Allocation]

    var parsedSubnet: Subnet {
        (try? Subnet.parse(subnet)) ?? Subnet(network: IPv4(value: 0), prefixLength: 32)
    }
}

var networksDirectory: String { Paths.root + "/networks" }
func networkPath(_ name: String) -> String { networksDirectory + "/\(name).json" }

/// Network names become file names: the container-name rules, at most 32 characters.
func validateNetworkName(_ name: String) throws {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    guard !name.isEmpty, name.count <= 32, name.first != ".", name.first != "-",
        name.allSatisfy({ allowed.contains($0) }), name != "none"
    else {
        throw UsageError(
            "invalid network name '\(name)' (1-32 of a-z A-Z 0-9 _ . -, not starting with . or -, not 'none')"
        )
    }
}

/// Every change to a network file happens under one flock(2) on networks/.lock, held until the
/// process closes it (or dies: the kernel drops the lock then, so a killed runtime never leaves
/// it held). Two runs can then never pick the same free address.
func withNetworkLock<T>(_ body: () throws -> T) throws -> T {
    try makeDirectories(networksDirectory, mode: 0o700)
    let path = networksDirectory + "/.lock"
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SyscallError("open \(path)") }
    defer { close(fd) }
    while flock(fd, LOCK_EX) != 0 {
        guard errno == EINTR else { throw SyscallError("flock \(path)") }
    }
    return try body()
}

func readNetwork(_ name: String) throws -> NetworkRecord? {
    let path = networkPath(name)
    guard fileExists(path) else { return nil }
    do {
        return try JSONDecoder().decode(NetworkRecord.self, from: Data(try readFile(path).utf8))
    } catch let error as SyscallError {
        throw error
    } catch {
        throw Failure("read \(path): not a valid network file")
    }
}

/// Through a temporary file and rename(2), like the container records: a reader, or a runtime
/// killed halfway, never sees half a file.
func writeNetwork(_ network: NetworkRecord) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let json = String(decoding: try encoder.encode(network), as: UTF8.self) + "\n"
    let path = networkPath(network.name)
    try writeFile(path + ".tmp", json, mode: 0o600)
    guard rename(path + ".tmp", path) == 0 else { throw SyscallError("rename \(path).tmp to \(path)") }
}

/// Drops the allocations of containers that no longer exist (their runtime was killed before it
/// could release them, or their directory was removed by hand). A container that is still being
/// started has its directory already: reserveName() comes first.
func reclaimAddresses(_ network: inout NetworkRecord) {
    network.allocations = network.allocations.filter { id, allocation in
        guard isDirectory(containerDirectory(allocation.container)) else { return false }
        guard let record = try? readRecord(allocation.container) else { return true }
        return record.id == id
    }
}

// MARK: kernel names

/// Every kernel object we make carries its owner in its name: `mdb` (bridge) or `mdv` (veth) and
/// 12 hex digits of a hash of MYDOCKER_ROOT and the network's name or the container's ID, so that
/// two state roots on one machine (two classes, the tests) never reach for the same link. Link
/// names have at most 15 characters (IFNAMSIZ), too few for the root's path, which the alias holds.
func ownerHash(_ parts: String...) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in ([Paths.root] + parts).joined(separator: "\0").utf8 {
        hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
    }
    let digits = String(hash, radix: 16)
    return String((String(repeating: "0", count: 16) + digits).suffix(12))
}

func vethName(containerID: String) -> String { "mdv" + ownerHash("container", containerID) }

// MARK: network create / ls / rm

/// `network create [--subnet CIDR] NAME`, `network ls`, `network rm NAME`.
func network(_ arguments: [String]) throws -> Int32 {
    if arguments.first == nil || arguments.first == "--help" || arguments.first == "-h" {
        _ = try networkSpec.parse(["--help"])
    }
    let parsed = try networkSpec.parse(Array(arguments.dropFirst()))
    let subcommand = arguments.first ?? ""
    let words = parsed.positionals
    switch subcommand {
    case "create":
        guard words.count == 1 else { throw UsageError("network create needs exactly one network name") }
        try validateNetworkName(words[0])
        let subnet = try parsed.value("--subnet").map(Subnet.parse)
        try requireRoot()
        try Paths.validateRoot()
        try withNetworkLock {
            guard try readNetwork(words[0]) == nil else {
                throw Failure("network '\(words[0])' already exists")
            }
            _ = try createNetwork(words[0], subnet: subnet ?? freeSubnet())
        }
        printOutput(words[0] + "\n")
    case "ls":
        guard words.isEmpty, !parsed.has("--subnet") else {
            throw UsageError("network ls takes no arguments")
        }
        try requireRoot()
        try Paths.validateRoot()
        try listNetworks()
    case "rm":
        guard words.count == 1, !parsed.has("--subnet") else {
            throw UsageError("network rm needs exactly one network name")
        }
        try validateNetworkName(words[0])
        try requireRoot()
        try Paths.validateRoot()
        try withNetworkLock { try removeNetwork(words[0]) }
        printOutput(words[0] + "\n")
    default:
        throw UsageError("network needs create, ls or rm (see \(toolName) network --help)")
    }
    return 0
}

/// Makes the network's kernel objects, checks first, undoes all of it if any step fails, and only
/// then writes its file. Called under the network lock.
func createNetwork(_ name: String, subnet: Subnet) throws -> NetworkRecord {
    let socket = try RouteSocket()
    try checkSubnetIsFree(subnet, for: name, on: socket)
    let hash = ownerHash("network", name)
    let network = NetworkRecord(
        name: name, subnet: subnet.description, gateway: subnet.gateway.description, bridge: "mdb" + hash,
        table: "mydocker_" + hash, created: timestamp(), allocations: [:])
    // A runtime killed during an earlier create of this name may have left them: they are ours
    // by their names.
    _ = try? deleteLink(network.bridge, on: socket)
    do {
        // nft first: without nftables nothing else gets made.
        try createFirewall(network)
        try createBridge(network.bridge, on: socket)
        guard let bridge = try findLink(network.bridge, on: socket) else {
            throw Failure("bridge \(network.bridge) vanished after it was created")
        }
        try setAlias(
            network.bridge, index: bridge.index, alias: "mydocker network \(name) in \(Paths.root)",
            on: socket)
        try addAddress(subnet.gateway, subnet: subnet, index: bridge.index, name: network.bridge, on: socket)
        try enableForwarding(bridge: network.bridge)
        try writeNetwork(network)
    } catch {
        _ = try? deleteLink(network.bridge, on: socket)
        try? deleteFirewall(network)
        throw error
    }
    return network
}

/// Without --subnet, the first of 10.213.1.0/24 ... 10.213.255.0/24 that nothing on the host
/// uses yet (10.213.0.0/24 is the default network's).
func freeSubnet() throws -> Subnet {
    let used = try hostNetworks(on: try RouteSocket()).map(\.subnet)
    let base = try Subnet.parse(defaultSubnet).network.value
    for third in UInt32(1)...255 {
        let candidate = Subnet(network: IPv4(value: base | third << 8), prefixLength: 24)
        if !used.contains(where: { $0.overlaps(candidate) }) { return candidate }
    }
    throw Failure(
        "no free subnet left in 10.213.0.0/16 (choose one: \(toolName) network create --subnet CIDR NAME)")
}

/// The subnet must not overlap anything the host already routes or has an address in: a LAN,
/// docker0, a VPN, another MYDOCKER_ROOT's network. Otherwise packets for those machines would go
/// into our bridge instead (or the other way round).
func checkSubnetIsFree(_ subnet: Subnet, for name: String, on socket: RouteSocket) throws {
    if let clash = try hostNetworks(on: socket).first(where: { $0.subnet.overlaps(subnet) }) {
        throw Failure(
            "subnet \(subnet) of network '\(name)' overlaps the host's \(clash.what) (choose another: \(toolName) network create --subnet CIDR \(name))"
        )
    }
}

/// The host must route packets between the bridge and its other interfaces (ip_forward, off by
/// default on most distributions), and it must let packets with a 127.0.0.1 source out through
/// the bridge (route_localnet, for published ports reached at 127.0.0.1: the kernel drops such
/// "martians" otherwise). ip_forward is host-wide and stays on, as docker leaves it;
/// route_localnet is the bridge's own setting and goes with it.
func enableForwarding(bridge: String) throws {
    let forward = "/proc/sys/net/ipv4/ip_forward"
    if (try? readFile(forward))?.hasPrefix("1") != true { try writeFile(forward, "1") }
    try writeFile("/proc/sys/net/ipv4/conf/\(bridge)/route_localnet", "1")
}

func listNetworks() throws {
    var rows = [["NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS"]]
    let names = isDirectory(networksDirectory) ? try listDirectory(networksDirectory) : []
    for file in names where file.hasSuffix(".json") {
        guard let network = try readNetwork(String(file.dropLast(5))) else { continue }
        rows.append([
            network.name, network.subnet, network.gateway, network.bridge, String(network.allocations.count),
        ])
    }
    printOutput(formatTable(rows))
}

/// Refused while a container holds an address in it; otherwise the table, the bridge (and with it
/// its address and routes) and the file go, in that order.
func removeNetwork(_ name: String) throws {
    guard var network = try readNetwork(name) else { throw Failure("no such network: \(name)") }
    reclaimAddresses(&network)
    if let user = network.allocations.values.map(\.container).sorted().first {
        throw Failure(
            "network '\(name)' is in use by container '\(user)' (remove it first: \(toolName) rm -f \(user))")
    }
    try deleteFirewall(network)
    try deleteLink(network.bridge, on: try RouteSocket())
    guard unlink(networkPath(name)) == 0 || errno == ENOENT else {
        throw SyscallError("unlink \(networkPath(name))")
    }
}

// MARK: a container's endpoint (run side)

/// `-p HOST:CONTAINER[/udp]`.
struct PortMapping: Equatable {
    let hostPort: UInt16
    let containerPort: UInt16
    let proto: String

    var description: String { "\(hostPort):\(containerPort)/\(proto)" }
}

func parsePortMapping(_ spec: String) throws -> PortMapping {
    var text = Substring(spec)
    var proto = "tcp"
    if let slash = text.lastIndex(of: "/") {
        proto = String(text[text.index(after: slash)...])
        text = text[..<slash]
    }
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard proto == "tcp" || proto == "udp", parts.count == 2 else {
        throw UsageError("invalid port mapping '\(spec)': use -p HOST:CONTAINER or -p HOST:CONTAINER/udp")
    }
    let ports = parts.map { part in part.allSatisfy(\.isASCII) && part.count <= 5 ? UInt16(part) : nil }
    guard let host = ports[0], let container = ports[1], host > 0, container > 0 else {
        throw UsageError("invalid port mapping '\(spec)': ports are numbers from 1 to 65535")
    }
    return PortMapping(hostPort: host, containerPort: container, proto: proto)
}

/// What `run` reserved for one container: its network, its address and its published ports.
struct Endpoint {
    let network: NetworkRecord
    let address: IPv4
    let ports: [PortMapping]
    let veth: String

    var cidr: String { "\(address)/\(network.parsedSubnet.prefixLength)" }
}

/// Takes the lowest free address in the container's network (creating the default network on
/// first use) and checks that no container of this root publishes the same host ports. Nothing
/// in the kernel is touched yet: that happens in connectContainer, once the container exists.
func reserveEndpoint(_ options: RunOptions, id: String, name: String) throws -> Endpoint? {
    guard let networkName = options.network else { return nil }
    return try withNetworkLock {
        try checkPortsAreFree(options.ports, id: id)
        var network: NetworkRecord
        if let existing = try readNetwork(networkName) {
            network = existing
        } else if networkName == defaultNetworkName {
            network = try createNetwork(networkName, subnet: try Subnet.parse(defaultSubnet))
        } else {
            throw Failure(
                "no such network: \(networkName) (create it: \(toolName) network create \(networkName))")
        }
        reclaimAddresses(&network)
        let subnet = network.parsedSubnet
        let taken = Set(network.allocations.values.map(\.address))
        // Not the network address, not the gateway (network + 1), not the broadcast address.
        var candidate = subnet.gateway.value + 1
        while candidate < subnet.broadcast.value && taken.contains(IPv4(value: candidate).description) {
            candidate += 1
        }
        guard candidate < subnet.broadcast.value else {
            throw Failure("network '\(networkName)' has no free address left in \(subnet)")
        }
        let address = IPv4(value: candidate)
        network.allocations[id] = .init(address: address.description, container: name)
        try writeNetwork(network)
        return Endpoint(
            network: network, address: address, ports: options.ports, veth: vethName(containerID: id))
    }
}

/// A host port leads to one container only: refused if this run names it twice, or another
/// container of this root (running or not, until it is removed) has it.
func checkPortsAreFree(_ ports: [PortMapping], id: String) throws {
    // Without -p there is nothing to check, and no reason to read every container's record.
    guard !ports.isEmpty else { return }
    var seen: [String: String] = [:]
    for name in try containerNames() {
        guard let record = try? readRecord(name), record.id != id else { continue }
        for port in record.ports ?? [] {
            seen[String(port.split(separator: ":")[0]) + "/" + (port.split(separator: "/").last ?? "tcp")] =
                record.name
        }
    }
    for port in ports {
        let key = "\(port.hostPort)/\(port.proto)"
        if let owner = seen[key] {
            throw Failure(
                owner.isEmpty
                    ? "port \(key) is published twice"
                    : "port \(key) is already published by container '\(owner)'")
        }
        seen[key] = ""
    }
}

extension ContainerRecord {
    mutating func note(_ endpoint: Endpoint?) {
        guard let endpoint else { return }
        network = endpoint.network.name
        ipAddress = endpoint.address.description
        ports = endpoint.ports.map(\.description)
    }
}

/// init's flags for the container's side of the cable.
func networkArguments(_ endpoint: Endpoint?) -> [String] {
    guard let endpoint else { return [] }
    return ["--address", endpoint.cidr, "--gateway", endpoint.network.gateway]
}

/// Runtime side, after the clone and before init is released: the veth pair, its container end
/// created directly in the container's network namespace as eth0 with the bridge's MTU, then the
/// published ports.
func connectContainer(_ pid: pid_t, _ endpoint: Endpoint) throws {
    let socket = try RouteSocket()
    guard let bridge = try findLink(endpoint.network.bridge, on: socket) else {
        throw Failure(
            "network '\(endpoint.network.name)': its bridge \(endpoint.network.bridge) is gone (re-create the network)"
        )
    }
    try createVeth(
        endpoint.veth, bridge: bridge.index, mtu: bridge.mtu, peer: "eth0", peerPID: pid, on: socket)
    guard let veth = try findLink(endpoint.veth, on: socket) else {
        throw Failure("veth \(endpoint.veth) vanished")
    }
    try setHairpin(endpoint.veth, index: veth.index, on: socket)
    try publishPorts(endpoint.ports, to: endpoint.address, in: endpoint.network)
}

/// Undoes connectContainer and reserveEndpoint for a record, whatever state a killed runtime left:
/// each part that is already gone is skipped. The veth pair dies by itself with the container's
/// network namespace, once nothing holds that any more (its last process, or a socket or bind
/// mount somebody keeps). `rm` deletes it anyway, to be sure; a foreground run whose container has
/// just exited leaves it to the kernel: deleting it here would only wait, synchronously, for the
/// same teardown (tens of milliseconds of RCU grace periods on a busy machine).
func disconnectContainer(_ record: ContainerRecord, deletingVeth: Bool = true) {
    guard let name = record.network else { return }
    if deletingVeth, let socket = try? RouteSocket() {
        _ = try? deleteLink(vethName(containerID: record.id), on: socket)
    }
    _ = try? withNetworkLock {
        guard var network = try readNetwork(name) else { return }
        if let address = record.ipAddress.flatMap({ IPv4(Substring($0)) }) {
            try? unpublishPorts(
                (record.ports ?? []).compactMap { try? parsePortMapping($0) }, from: address, in: network)
        }
        network.allocations[record.id] = nil
        try writeNetwork(network)
    }
}

// MARK: files in the container

/// /etc/hosts, /etc/hostname and /etc/resolv.conf in the container's own layer, written before it
/// starts. The image's /etc must be a real directory: a symlink there (made by the image) would
/// lead these writes into the host's files, since we write from the host's side.
func writeNetworkFiles(_ endpoint: Endpoint?, name: String, rootfs: String) throws {
    guard let endpoint else { return }
    let etc = rootfs + "/etc"
    var info = stat()
    if lstat(etc, &info) != 0 {
        guard mkdir(etc, 0o755) == 0 else { throw SyscallError("mkdir \(etc)") }
    } else if (info.st_mode & S_IFMT) != S_IFDIR {
        throw Failure("the image's /etc is not a directory: the network files cannot be written")
    }
    let hosts =
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\(endpoint.address)\t\(name)\n"
    let files = [("hosts", hosts), ("hostname", name + "\n"), ("resolv.conf", try hostResolvConf())]
    for (file, content) in files {
        let path = etc + "/" + file
        // An image's resolv.conf is often a symlink (into /run): replace the link, never follow it.
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            guard unlink(path) == 0 else { throw SyscallError("unlink \(path)") }
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SyscallError("open \(path)") }
        close(fd)
        try writeFile(path, content)
    }
}

/// The host's resolver configuration. On systemd-resolved hosts /etc/resolv.conf names the stub
/// 127.0.0.53, a loopback address that means the container's own loopback inside it, where
/// nothing listens; resolved keeps the real upstream servers in another file, as docker reads.
func hostResolvConf() throws -> String {
    let host = (try? readFile("/etc/resolv.conf")) ?? ""
    let upstream = "/run/systemd/resolve/resolv.conf"
    let usesStub = host.split(separator: "\n").contains { $0.hasPrefix("nameserver 127.0.0.53") }
    if usesStub, let real = try? readFile(upstream) { return real }
    return host
}

// MARK: the container's side (init, inside the new network namespace)

/// `ip link set lo up`, `ip addr add ADDRESS dev eth0`, `ip link set eth0 up`, `ip route add
/// default via GATEWAY`: eth0 exists already (the runtime made it here before it let us go on).
/// The route comes last: the kernel refuses a gateway that no address of an up link can reach
/// (ENETUNREACH).
func setUpNetwork(address: String?, gateway: String?) throws {
    guard let address, let gateway else { return }
    let parts = address.split(separator: "/")
    guard parts.count == 2, let ip = IPv4(parts[0]), let length = UInt8(parts[1]),
        let via = IPv4(Substring(gateway))
    else { throw UsageError("init: invalid --address \(address) or --gateway \(gateway)") }
    let socket = try RouteSocket()
    // The loopback device is the first one registered in every network namespace: index 1.
    try setLinkUp("lo", index: 1, on: socket)
    guard let eth0 = try findLink("eth0", on: socket) else { throw Failure("init: no eth0 in the container") }
    try addAddress(
        ip, subnet: Subnet(network: ip, prefixLength: length), index: eth0.index, name: "eth0", on: socket)
    try setLinkUp("eth0", index: eth0.index, on: socket)
    try addDefaultRoute(via: via, index: eth0.index, name: "eth0", on: socket)
}
