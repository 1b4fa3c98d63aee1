import CContainerSupport
import ContainerSupport
import Glibc

// `ip link add`, `ip addr add` and `ip route add` are not system calls: `ip` builds a message and
// sends it to the kernel over a socket of the NETLINK_ROUTE family (rtnetlink(7)). The message is
// a header (nlmsghdr), a fixed struct for the kind of object (ifinfomsg for links, ifaddrmsg for
// addresses, rtmsg for routes), then attributes: type, length, value, each padded to 4 bytes, and
// attributes may nest. The kernel answers every request that asks for an acknowledgement
// (NLM_F_ACK) with an error message whose code is 0 on success or a negative errno. We build the
// same bytes here; `ip -d monitor` on the host prints each one as we send it.
//
// The numbers (RTM_NEWLINK, IFLA_IFNAME, ...) come from the kernel's own headers, which the C shim
// includes because Swift's Glibc module map lacks <linux/*>: <linux/netlink.h>,
// <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>, <linux/veth.h>.

/// The bytes of one rtnetlink request: header, fixed struct, attributes.
struct NetlinkMessage {
    private(set) var bytes: [UInt8] = []
    /// Where each open nested attribute starts, so `end()` can fill in its length.
    private var nests: [Int] = []

    init(type: some BinaryInteger, flags: some BinaryInteger) {
        append(UInt32(0))  // nlmsg_len, set in `finished`
        append(UInt16(type))
        append(UInt16(NLM_F_REQUEST) | UInt16(flags))
        append(UInt32(0))  // nlmsg_seq
        append(UInt32(0))  // nlmsg_pid: 0 lets the kernel fill in our port
    }

    /// struct ifinfomsg: family, type, index, flags and the mask of flags to change.
    mutating func appendLinkHeader(index: Int32 = 0, up: Bool = false, family: Int32 = AF_UNSPEC) {
        append(UInt8(family))
        append(UInt8(0))
        append(UInt16(0))
        append(UInt32(bitPattern: index))
        append(UInt32(up ? IFF_UP : 0))
        append(UInt32(up ? IFF_UP : 0))
    }

    /// struct ifaddrmsg.
    mutating func appendAddressHeader(prefixLength: UInt8, index: Int32) {
        append(UInt8(AF_INET))
        append(prefixLength)
        append(UInt8(0))  // flags
        append(UInt8(RT_SCOPE_UNIVERSE.rawValue))
        append(UInt32(bitPattern: index))
    }

    /// struct rtmsg.
    mutating func appendRouteHeader(destinationLength: UInt8 = 0) {
        let fields: [UInt8] = [
            UInt8(AF_INET), destinationLength, 0, 0, UInt8(RT_TABLE_MAIN.rawValue), UInt8(RTPROT_BOOT),
            UInt8(RT_SCOPE_UNIVERSE.rawValue), UInt8(RTN_UNICAST),
        ]
        for byte in fields { append(byte) }
        append(UInt32(0))
    }

    mutating func attribute(_ type: some BinaryInteger, _ payload: [UInt8]) {
        append(UInt16(4 + payload.count))
        append(UInt16(type))
        bytes += payload
        pad()
    }

    mutating func attribute(_ type: some BinaryInteger, string: String) {
        attribute(type, Array(string.utf8) + [0])
    }
    mutating func attribute(_ type: some BinaryInteger, uint32 value: UInt32) {
        attribute(type, littleEndian(value))
    }
    mutating func attribute(_ type: some BinaryInteger, address: IPv4) { attribute(type, address.bytes) }

    /// Opens a nested attribute: its length covers everything appended until `end()`.
    mutating func begin(_ type: some BinaryInteger) {
        nests.append(bytes.count)
        append(UInt16(0))
        append(UInt16(type))
    }

    mutating func end() {
        let start = nests.removeLast()
        let length = littleEndian(UInt16(bytes.count - start))
        bytes[start] = length[0]
        bytes[start + 1] = length[1]
    }

    /// The message with its total length in the header.
    var finished: [UInt8] {
        var result = bytes
        let length = littleEndian(UInt32(bytes.count))
        result.replaceSubrange(0..<4, with: length)
        return result
    }

    mutating func append(_ value: UInt8) { bytes.append(value) }
    mutating func append(_ value: UInt16) { bytes += littleEndian(value) }
    mutating func append(_ value: UInt32) { bytes += littleEndian(value) }
    private mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
}

/// Netlink numbers are in the host's byte order (little-endian on x86 and arm64).
func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// One attribute of a reply: its type and payload.
struct NetlinkAttribute {
    let type: UInt16
    let payload: ArraySlice<UInt8>

    var uint32: UInt32 {
        payload.count >= 4 ? payload.prefix(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } : 0
    }
    var string: String { String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self) }
    var address: IPv4? { payload.count == 4 ? IPv4(bytes: Array(payload)) : nil }
}

/// A NETLINK_ROUTE socket in the network namespace of the process that opened it: a socket keeps
/// the namespace it was created in, whatever the process joins later.
final class RouteSocket {
    let fd: Int32

    init() throws {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw SyscallError("socket AF_NETLINK NETLINK_ROUTE") }
    }

    deinit { close(fd) }

    /// Sends one request with NLM_F_ACK and waits for the kernel's acknowledgement, an error message
    /// whose code is 0 or a negative errno (reported with `stage`). Returns what came before it
    /// (the answer to a GET).
    @discardableResult
    func request(_ message: NetlinkMessage, stage: String) throws -> [(type: UInt16, body: ArraySlice<UInt8>)]
    {
        try send(message.finished, stage: stage)
        var answers: [(type: UInt16, body: ArraySlice<UInt8>)] = []
        while true {
            for reply in try receive(stage: stage) {
                guard reply.type == UInt16(NLMSG_ERROR) else {
                    answers.append(reply)
                    continue
                }
                let code = Int32(bitPattern: attributeUInt32(reply.body.prefix(4)))
                guard code == 0 else { throw SyscallError(stage, errno: -code) }
                return answers
            }
        }
    }

    /// Sends a dump request (NLM_F_DUMP) and collects every reply message up to NLMSG_DONE.
    func dump(_ message: NetlinkMessage, stage: String) throws -> [(type: UInt16, body: ArraySlice<UInt8>)] {
        try send(message.finished, stage: stage)
        var messages: [(type: UInt16, body: ArraySlice<UInt8>)] = []
        while true {
            for reply in try receive(stage: stage) {
                if reply.type == UInt16(NLMSG_DONE) { return messages }
                if reply.type == UInt16(NLMSG_ERROR) {
                    let code = Int32(bitPattern: attributeUInt32(reply.body.prefix(4)))
                    throw SyscallError(stage, errno: -code)
                }
                messages.append(reply)
            }
        }
    }

    private func send(_ bytes: [UInt8], stage: String) throws {
        // No address: an unbound netlink socket sends to the kernel (port 0).
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard n == bytes.count else { throw SyscallError(stage) }
    }

    /// One datagram from the kernel, split into its messages.
    private func receive(stage: String) throws -> [(type: UInt16, body: ArraySlice<UInt8>)] {
        var buffer = [UInt8](repeating: 0, count: 32768)
        var n = 0
        repeat {
            n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        } while n < 0 && errno == EINTR
        guard n > 0 else { throw SyscallError(stage) }
        var messages: [(type: UInt16, body: ArraySlice<UInt8>)] = []
        var offset = 0
        while offset + 16 <= n {
            let length = Int(attributeUInt32(buffer[offset..<offset + 4]))
            guard length >= 16, offset + length <= n else { break }
            let type = UInt16(buffer[offset + 4]) | UInt16(buffer[offset + 5]) << 8
            messages.append((type, buffer[(offset + 16)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
        return messages
    }
}

func attributeUInt32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    NetlinkAttribute(type: 0, payload: bytes).uint32
}

/// The attributes that follow a reply's fixed struct of `headerSize` bytes.
func parseAttributes(_ body: ArraySlice<UInt8>, headerSize: Int) -> [NetlinkAttribute] {
    var attributes: [NetlinkAttribute] = []
    var offset = body.startIndex + headerSize
    while offset + 4 <= body.endIndex {
        let length = Int(body[offset]) | Int(body[offset + 1]) << 8
        let type = (UInt16(body[offset + 2]) | UInt16(body[offset + 3]) << 8) & 0x3fff
        guard length >= 4, offset + length <= body.endIndex else { break }
        attributes.append(NetlinkAttribute(type: type, payload: body[(offset + 4)..<(offset + length)]))
        offset += (length + 3) & ~3
    }
    return attributes
}

// MARK: the requests, each one `ip` command

/// `ip link add NAME type bridge`, and up.
func createBridge(_ name: String, on socket: RouteSocket) throws {
    var message = NetlinkMessage(type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK)
    message.appendLinkHeader(up: true)
    message.attribute(IFLA_IFNAME, string: name)
    message.begin(IFLA_LINKINFO)
    message.attribute(IFLA_INFO_KIND, string: "bridge")
    message.end()
    try requestNewLink(
        message, kind: "bridge", stage: "create bridge \(name) (ip link add \(name) type bridge)", on: socket)
}

/// `ip link add HOST mtu MTU master BRIDGE up type veth peer name eth0 netns PID`: both ends in
/// one request, the peer born in the container's network namespace (IFLA_NET_NS_PID), so it never
/// appears on the host, and no second name is needed there.
func createVeth(
    _ name: String, bridge: Int32, mtu: UInt32, peer: String, peerPID: pid_t, on socket: RouteSocket
) throws {
    var message = NetlinkMessage(type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK)
    message.appendLinkHeader(up: true)
    message.attribute(IFLA_IFNAME, string: name)
    message.attribute(IFLA_MTU, uint32: mtu)
    message.attribute(IFLA_MASTER, uint32: UInt32(bitPattern: bridge))
    message.begin(IFLA_LINKINFO)
    message.attribute(IFLA_INFO_KIND, string: "veth")
    message.begin(IFLA_INFO_DATA)
    // The peer's attributes come after an ifinfomsg of its own (veth(4), <linux/veth.h>). Not
    // IFF_UP: the kernel brings the peer up before the pair is joined, and a veth end without
    // its other end refuses to go up (ENOTCONN). Init sets eth0 up.
    message.begin(VETH_INFO_PEER)
    message.appendLinkHeader()
    message.attribute(IFLA_IFNAME, string: peer)
    message.attribute(IFLA_MTU, uint32: mtu)
    message.attribute(IFLA_NET_NS_PID, uint32: UInt32(peerPID))
    message.end()
    message.end()
    message.end()
    try requestNewLink(
        message, kind: "veth",
        stage:
            "create veth \(name) (ip link add \(name) master BRIDGE type veth peer \(peer) netns \(peerPID))",
        on: socket)
}

/// A kind of link the kernel has no driver for, and whose module modprobe could not load, is
/// EOPNOTSUPP ("Unknown device type"): say which module it takes.
func requestNewLink(_ message: NetlinkMessage, kind: String, stage: String, on socket: RouteSocket) throws {
    do {
        try socket.request(message, stage: stage)
    } catch let error as SyscallError where error.errno == EOPNOTSUPP {
        throw Failure("\(error) (the kernel lacks \(kind) support: load it with modprobe \(kind))")
    }
}

/// `ip link set NAME alias TEXT`: the kernel keeps up to 128 bytes of free text per link, shown by
/// `ip link show`; ours says whose the link is.
func setAlias(_ name: String, index: Int32, alias: String, on socket: RouteSocket) throws {
    var message = NetlinkMessage(type: RTM_NEWLINK, flags: NLM_F_ACK)
    message.appendLinkHeader(index: index)
    message.attribute(IFLA_IFALIAS, string: String(decoding: alias.utf8.prefix(127), as: UTF8.self))
    try socket.request(message, stage: "set alias of \(name) (ip link set \(name) alias ...)")
}

/// `bridge link set dev NAME hairpin on`: the bridge may send a frame back out of the port it came
/// in by. A container that reaches its own published port through the host needs it when the
/// kernel filters bridged traffic (br_netfilter): the translated packet is then bridged straight
/// back to the port it came from, which a bridge otherwise never does.
func setHairpin(_ name: String, index: Int32, on socket: RouteSocket) throws {
    var message = NetlinkMessage(type: RTM_SETLINK, flags: NLM_F_ACK)
    message.appendLinkHeader(index: index, family: AF_BRIDGE)
    message.begin(Int32(IFLA_PROTINFO) | NLA_F_NESTED)
    message.attribute(IFLA_BRPORT_MODE, [1])
    message.end()
    try socket.request(message, stage: "set hairpin on \(name) (bridge link set dev \(name) hairpin on)")
}

/// `ip link set NAME up`, by index.
func setLinkUp(_ name: String, index: Int32, on socket: RouteSocket) throws {
    var message = NetlinkMessage(type: RTM_NEWLINK, flags: NLM_F_ACK)
    message.appendLinkHeader(index: index, up: true)
    try socket.request(message, stage: "set \(name) up (ip link set \(name) up)")
}

/// `ip link del NAME`. False when there was no such link.
@discardableResult
func deleteLink(_ name: String, on socket: RouteSocket) throws -> Bool {
    var message = NetlinkMessage(type: RTM_DELLINK, flags: NLM_F_ACK)
    message.appendLinkHeader()
    message.attribute(IFLA_IFNAME, string: name)
    do {
        try socket.request(message, stage: "delete \(name) (ip link del \(name))")
    } catch let error as SyscallError where error.errno == ENODEV {
        return false
    }
    return true
}

/// `ip link show NAME`: the link's index and MTU, nil when there is none.
func findLink(_ name: String, on socket: RouteSocket) throws -> (index: Int32, mtu: UInt32)? {
    var message = NetlinkMessage(type: RTM_GETLINK, flags: NLM_F_ACK)
    message.appendLinkHeader()
    message.attribute(IFLA_IFNAME, string: name)
    let replies: [(type: UInt16, body: ArraySlice<UInt8>)]
    do {
        replies = try socket.request(message, stage: "look up \(name) (ip link show \(name))")
    } catch let error as SyscallError where error.errno == ENODEV {
        return nil
    }
    for reply in replies where reply.type == UInt16(RTM_NEWLINK) && reply.body.count >= 16 {
        let index = Int32(bitPattern: attributeUInt32(reply.body.dropFirst(4)))
        let mtu =
            parseAttributes(reply.body, headerSize: 16).first { $0.type == UInt16(IFLA_MTU) }?.uint32 ?? 1500
        return (index, mtu)
    }
    return nil
}

/// `ip addr add ADDRESS/PREFIX broadcast BROADCAST dev NAME`.
func addAddress(_ address: IPv4, subnet: Subnet, index: Int32, name: String, on socket: RouteSocket) throws {
    var message = NetlinkMessage(type: RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK)
    message.appendAddressHeader(prefixLength: subnet.prefixLength, index: index)
    message.attribute(IFA_LOCAL, address: address)
    message.attribute(IFA_ADDRESS, address: address)
    message.attribute(IFA_BROADCAST, address: subnet.broadcast)
    try socket.request(
        message,
        stage:
            "add \(address)/\(subnet.prefixLength) to \(name) (ip addr add \(address)/\(subnet.prefixLength) dev \(name))"
    )
}

/// `ip route add default via GATEWAY dev NAME`.
func addDefaultRoute(via gateway: IPv4, index: Int32, name: String, on socket: RouteSocket) throws {
    var message = NetlinkMessage(type: RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK)
    message.appendRouteHeader()
    message.attribute(RTA_GATEWAY.rawValue, address: gateway)
    message.attribute(RTA_OIF.rawValue, uint32: UInt32(bitPattern: index))
    try socket.request(
        message, stage: "add default route via \(gateway) (ip route add default via \(gateway) dev \(name))")
}

/// What the host's network already uses, for the subnet check: every IPv4 route (`ip route show
/// table all`, default routes left out) and every IPv4 address (`ip addr`), each with the name of
/// its link.
func hostNetworks(on socket: RouteSocket) throws -> [(subnet: Subnet, what: String)] {
    var found: [(subnet: Subnet, what: String)] = []
    var routes = NetlinkMessage(type: RTM_GETROUTE, flags: NLM_F_DUMP)
    routes.appendRouteHeader()
    for reply in try socket.dump(routes, stage: "list routes (ip route show table all)") {
        let body = reply.body
        guard body.count >= 12, body[body.startIndex] == UInt8(AF_INET) else { continue }
        let length = body[body.startIndex + 1]
        let type = body[body.startIndex + 7]
        let attributes = parseAttributes(body, headerSize: 12)
        guard length > 0, type == UInt8(RTN_UNICAST) || type == UInt8(RTN_LOCAL),
            let destination = attributes.first(where: { $0.type == UInt16(RTA_DST.rawValue) })?.address
        else { continue }
        let device = attributes.first { $0.type == UInt16(RTA_OIF.rawValue) }.map {
            linkName(Int32(bitPattern: $0.uint32))
        }
        let subnet = Subnet(network: destination, prefixLength: length)
        found.append((subnet, "route \(subnet)" + (device.map { " dev \($0)" } ?? "")))
    }
    var addresses = NetlinkMessage(type: RTM_GETADDR, flags: NLM_F_DUMP)
    addresses.appendAddressHeader(prefixLength: 0, index: 0)
    for reply in try socket.dump(addresses, stage: "list addresses (ip addr show)") {
        let body = reply.body
        guard body.count >= 8, body[body.startIndex] == UInt8(AF_INET) else { continue }
        let length = body[body.startIndex + 1]
        let index = Int32(bitPattern: attributeUInt32(body.dropFirst(4)))
        let attributes = parseAttributes(body, headerSize: 8)
        guard
            let address =
                (attributes.first { $0.type == UInt16(IFA_LOCAL) }
                ?? attributes.first { $0.type == UInt16(IFA_ADDRESS) })?
                .address
        else { continue }
        found.append(
            (
                Subnet(network: address, prefixLength: length),
                "address \(address)/\(length) on \(linkName(index))"
            ))
    }
    return found
}

func linkName(_ index: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
    guard index > 0, let name = if_indextoname(UInt32(index), &buffer) else { return "#\(index)" }
    return String(cString: name)
}
