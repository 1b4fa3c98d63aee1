import CContainerSupport
import ContainerSupport
import Glibc

// Root is not one privilege but some forty (capabilities(7)): CAP_SYS_ADMIN mounts and unmounts,
// CAP_MKNOD makes device nodes, CAP_SYS_MODULE loads kernel code. Until now the container's root
// held all of them, so it could unmount the masks over /proc and mount the host's cgroups. docker
// gives a container 14 capabilities, those a program that owns files, binds low ports and changes
// its user needs, and a seccomp filter that refuses the system calls no container needs at all.
// Both are applied by the C shim (hardening.c) as the very last thing before the user's command.

/// Every capability by its number, as capabilities(7) and <linux/capability.h> name them.
let capabilityNames = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]

/// docker's default set (moby/moby:oci/caps/defaults.go): 0xa80425fb.
let defaultCapabilities = [
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
]

/// What the container's processes may do: the capability set (bounding, permitted, effective),
/// the seccomp filter, no_new_privs, and `--privileged`, which also leaves /proc unmasked and the
/// host's devices in /dev.
struct SecurityOptions {
    var capabilities: UInt64 = capabilityMask(defaultCapabilities)
    var seccomp = true
    var noNewPrivileges = false
    var privileged = false
}

/// Every capability this kernel has.
func allCapabilities() -> UInt64 {
    let last = Int(cs_last_capability())
    return last >= 63 ? ~0 : (UInt64(1) << UInt64(last + 1)) - 1
}

func capabilityMask(_ names: [String]) -> UInt64 {
    names.reduce(0) { mask, name in
        mask | (capabilityNames.firstIndex(of: name).map { UInt64(1) << UInt64($0) } ?? 0)
    }
}

/// `sys_admin`, `CAP_SYS_ADMIN` and `SYS_ADMIN` are one name, as in docker; ALL stays ALL.
func normalizeCapability(_ text: String) throws -> String {
    var name = text.uppercased()
    if name.hasPrefix("CAP_") { name.removeFirst(4) }
    guard name == "ALL" || capabilityNames.contains(name) else {
        throw UsageError(
            "unknown capability \(quotedValue(text)) (names as in capabilities(7), e.g. NET_ADMIN)")
    }
    return name
}

/// `--cap-add`, `--cap-drop`, `--privileged` and `--security-opt`, combined as docker combines them
/// (moby/moby:oci/caps/utils.go, TweakCapabilities): `--cap-add ALL` is every capability but the
/// dropped ones, `--cap-drop ALL` leaves only the added ones, and otherwise the defaults lose the
/// dropped ones and then gain the added ones (an added name wins over the same name dropped).
func parseSecurityOptions(capAdd: [String], capDrop: [String], privileged: Bool, securityOpts: [String])
    throws -> SecurityOptions
{
    var options = SecurityOptions()
    let add = try capAdd.map(normalizeCapability)
    let drop = try capDrop.map(normalizeCapability)
    let added = capabilityMask(add)
    let dropped = capabilityMask(drop)
    if add.contains("ALL") {
        options.capabilities = allCapabilities() & ~dropped
    } else if drop.contains("ALL") {
        options.capabilities = added
    } else {
        options.capabilities = (options.capabilities & ~dropped) | added
    }
    for option in securityOpts {
        // docker's older spelling separates with ':' (`seccomp:unconfined`).
        switch String(option.map { $0 == ":" ? "=" : $0 }) {
        case "seccomp=unconfined": options.seccomp = false
        case "no-new-privileges", "no-new-privileges=true": options.noNewPrivileges = true
        case "no-new-privileges=false": options.noNewPrivileges = false
        default:
            throw UsageError(
                "unsupported security option \(quotedValue(option)) (this runtime knows seccomp=unconfined and no-new-privileges)"
            )
        }
    }
    if privileged {
        options.privileged = true
        options.capabilities = allCapabilities()
        options.seccomp = false
    }
    return options
}

/// How `run` hands the options to init (flags of `init`, see Init.swift).
func securityArguments(_ options: SecurityOptions) -> [String] {
    ["--capabilities", String(options.capabilities, radix: 16)] + (options.seccomp ? [] : ["--no-seccomp"])
        + (options.noNewPrivileges ? ["--no-new-privileges"] : [])
        + (options.privileged ? ["--privileged"] : [])
}

/// Init's side of securityArguments.
func parseSecurityArguments(_ parsed: ParsedArguments) throws -> SecurityOptions {
    var options = SecurityOptions()
    if let text = parsed.value("--capabilities") {
        guard let mask = UInt64(text, radix: 16) else { throw UsageError("init: bad --capabilities \(text)") }
        options.capabilities = mask
    }
    options.seccomp = !parsed.has("--no-seccomp")
    options.noNewPrivileges = parsed.has("--no-new-privileges")
    options.privileged = parsed.has("--privileged")
    return options
}

/// The last step before the command: capabilities, groups, gid, uid, no_new_privs, seccomp filter,
/// in the order hardening.c explains. After it, this process can no longer mount, unmount, load a
/// module or become root again; everything that needs those (all of Init.swift) is done.
func dropPrivileges(_ options: SecurityOptions, user: ContainerUser) throws {
    let flags =
        (options.noNewPrivileges ? CS_PRIVILEGES_NO_NEW_PRIVS : 0)
        | (options.seccomp ? CS_PRIVILEGES_SECCOMP : 0)
    var stage: UnsafePointer<CChar>?
    let result = user.groups.withUnsafeBufferPointer { groups in
        cs_apply_privileges(
            options.capabilities, user.uid, user.gid, groups.baseAddress, groups.count, Int32(flags), &stage)
    }
    guard result == 0 else { throw SyscallError(stage.map { String(cString: $0) } ?? "drop privileges") }
}
