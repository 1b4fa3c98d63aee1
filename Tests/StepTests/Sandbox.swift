import CContainerSupport
import Foundation
import Testing

/// One test's world: a fresh MYDOCKER_ROOT, the step under test, and the machine's state before the
/// test, so that anything the test leaves behind can be found, blamed and removed.
final class Sandbox {
    let step: String
    /// The temporary MYDOCKER_ROOT.
    let root: String
    /// Scratch space beside the root (volume sources, files to compare), removed with it.
    let scratch: String
    /// Container names handed out by `newName()`: teardown removes them through the runtime first.
    private(set) var names: [String] = []
    /// Step 11: the network namespace file every runtime call enters (nsenter --net), so that the
    /// runtime never touches the host's own network (TestNetwork in Step11Tests.swift).
    var networkNamespace: String?
    /// Run at teardown after the runtime's own rm, before the residue check: each returns what it
    /// found left behind (links, nftables tables, address files) after cleaning it up.
    var teardownChecks: [() -> [String]] = []
    /// The network namespace withSandbox made for a step that has networking (step 11 on).
    var testNetwork: TestNetwork?
    private let before: MachineState
    /// Holds /tmp/mydocker-tests.lock: one sandbox at a time on the machine, also across test
    /// processes, because mounts and cgroups are machine-wide.
    private let machineLock: Int32

    init(step: String) throws {
        guard Harness.isRoot else {
            throw HarnessError("not root: CI=true makes this a failure; run the tests as root")
        }
        Harness.becomeSubreaper
        machineLock = open("/tmp/mydocker-tests.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if machineLock >= 0 { flock(machineLock, LOCK_EX) }
        let base = "/tmp/mydocker-test-\(UUID().uuidString.prefix(8).lowercased())"
        self.step = step
        root = base + "/root"
        scratch = base + "/scratch"
        before = MachineState.read()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    var base: String { (root as NSString).deletingLastPathComponent }

    /// Copies the busybox image into this root's images/, as rootfs-tools would put it there.
    func installBusyboxImage() throws {
        let tar = try Harness.busyboxImage.get()
        try FileManager.default.createDirectory(atPath: root + "/images", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: tar, toPath: root + "/images/busybox.tar")
    }

    /// A unique container name, `t-` and 8 hex digits.
    func newName() -> String {
        let name = "t-" + UUID().uuidString.prefix(8).lowercased()
        names.append(name)
        return name
    }

    /// Runs the step binary with MYDOCKER_ROOT set to this sandbox.
    func run(
        _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], timeout: Double = 30
    )
        -> RunResult
    {
        var env = environment
        env["MYDOCKER_ROOT"] = env["MYDOCKER_ROOT"] ?? root
        return runProcess(command(step) + arguments, environment: env, stdin: stdin, timeout: timeout)
    }

    /// The binary, behind nsenter when the sandbox has a network namespace.
    func command(_ step: String) -> [String] {
        guard let networkNamespace else { return [Harness.binary(step)] }
        return ["/usr/bin/nsenter", "--net=\(networkNamespace)", "--", Harness.binary(step)]
    }

    /// Starts the step binary in the background (to signal it, or to act while it runs).
    func start(_ arguments: [String], environment: [String: String] = [:]) -> Spawned {
        var env = environment
        env["MYDOCKER_ROOT"] = env["MYDOCKER_ROOT"] ?? root
        return Spawned(command(step) + arguments, environment: env)
    }

    /// Same, for another step's binary (to show an older step lacks a property).
    func run(step other: String, _ arguments: [String], timeout: Double = 30) -> RunResult {
        runProcess(command(other) + arguments, environment: ["MYDOCKER_ROOT": root], timeout: timeout)
    }

    /// What the test left behind, measured against the state before it: every line is a leak.
    func residue() -> [String] {
        let now = MachineState.read()
        var found: [String] = []
        for mount in newMounts(now) {
            found.append("mount left: \(mount.point) (\(mount.type))")
        }
        let ours = Set(MachineState.descendants(of: getpid()).map(\.pid))
        for cgroup in now.cgroups.subtracting(before.cgroups).sorted() where cgroupIsOurs(cgroup, ours) {
            found.append("cgroup left: \(cgroup)")
        }
        for process in MachineState.descendants(of: getpid()) {
            found.append("process left: \(process.pid) \(process.command)")
        }
        return found
    }

    /// Teardown, run after the body whether it passed or not: the runtime's own cleanup first, then
    /// the residue check, then force (kill, lazy unmount, rmdir), then the temp root goes.
    func tearDown(runtimeRemove: [String]?) {
        if let rm = runtimeRemove {
            for name in names { _ = run(rm + [name], timeout: 30) }
        }
        let networkLeaks = teardownChecks.flatMap { $0() }
        reapOrphans()
        let leaks = networkLeaks + residue()
        forceClean()
        let leftAfterForce = residue()
        #expect(leaks.isEmpty, "the test left residue behind:\n\(leaks.joined(separator: "\n"))")
        #expect(
            leftAfterForce.isEmpty,
            "residue even after forced cleanup:\n\(leftAfterForce.joined(separator: "\n"))")
        #expect(!FileManager.default.fileExists(atPath: base), "temp root \(base) not removed")
        if machineLock >= 0 { close(machineLock) }
    }

    /// Mounts (by mount ID) that were not there before. Those under another test's or a manual
    /// run's /tmp/mydocker-* root are somebody else's, not this test's.
    private func newMounts(_ now: MachineState) -> [MachineState.Mount] {
        now.mounts.values.filter { mount in
            guard before.mounts[mount.id] == nil else { return false }
            return mount.point.hasPrefix(base + "/") || !mount.point.hasPrefix("/tmp/mydocker-")
        }.sorted { $0.point.count > $1.point.count }
    }

    /// A new cgroup is this test's if it is empty or holds only our descendants; one with another
    /// process in it belongs to a container somebody else is running by hand.
    private func cgroupIsOurs(_ cgroup: String, _ ours: Set<pid_t>) -> Bool {
        let procs = (try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? ""
        return procs.split(separator: "\n").allSatisfy { pid_t($0).map(ours.contains) ?? true }
    }

    private func forceClean() {
        for process in MachineState.descendants(of: getpid()) { kill(process.pid, SIGKILL) }
        waitUntil(timeout: 10) { MachineState.descendants(of: getpid()).isEmpty }
        reapOrphans()
        let now = MachineState.read()
        for mount in newMounts(now) { umount2(mount.point, Int32(MNT_DETACH)) }
        let ours = Set(MachineState.descendants(of: getpid()).map(\.pid))
        let newCgroups = now.cgroups.subtracting(before.cgroups).filter { cgroupIsOurs($0, ours) }
        for cgroup in newCgroups.sorted(by: { $0.count > $1.count }) { rmdir(cgroup) }
        try? FileManager.default.removeItem(atPath: base)
    }

    /// Orphans re-parented to this subreaper stay zombies until we wait for them. Only between
    /// commands: a Spawned that is still running must collect its own child's status.
    func reapOrphans() {
        var status: Int32 = 0
        while waitpid(-1, &status, WNOHANG) > 0 {}
    }
}

/// Runs `body` in a fresh sandbox for `step` and checks for residue afterwards.
/// `runtimeRemove` is the runtime's own removal command for named containers (`["rm", "-f"]`).
func withSandbox(
    _ step: String, image: Bool = false, runtimeRemove: [String]? = nil, _ body: (Sandbox) throws -> Void
) throws {
    let box = try Sandbox(step: step)
    defer { box.tearDown(runtimeRemove: runtimeRemove) }
    // From step 11 on, `run` joins a network unless told otherwise: every runtime call then runs in
    // a network namespace the test made, so no test of any suite can touch the host's network.
    if let number = Int(step.filter(\.isNumber)), number >= 11 { box.testNetwork = try TestNetwork(box) }
    if image { try box.installBusyboxImage() }
    try body(box)
}

/// Mount points and container cgroup directories on the machine at one moment.
struct MachineState {
    struct Mount {
        let id: String
        let point: String
        let type: String
    }

    var mounts: [String: Mount]
    var cgroups: Set<String>

    static func read() -> MachineState {
        MachineState(mounts: readMounts(), cgroups: readContainerCgroups())
    }

    /// Every mount in our (the host's) mount namespace by its ID (field 1 of mountinfo): a mount
    /// stacked on an existing mount point is new even though its path is not.
    static func readMounts() -> [String: Mount] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else {
            return [:]
        }
        var result: [String: Mount] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else {
                continue
            }
            result[String(fields[0])] = Mount(
                id: String(fields[0]), point: String(fields[4]), type: String(fields[dash + 1]))
        }
        return result
    }

    /// Field 5 of /proc/self/mountinfo: where each mount sits in our (the host's) mount namespace.
    static func readMountPoints() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else {
            return []
        }
        return Set(
            text.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ")
                return fields.count > 4 ? String(fields[4]) : nil
            })
    }

    /// Every directory below a `mydocker` cgroup, in every hierarchy (v1) and in the unified tree (v2).
    static func readContainerCgroups() -> Set<String> {
        var result: Set<String> = []
        let fm = FileManager.default
        var parents = ["/sys/fs/cgroup/mydocker"]
        for hierarchy in (try? fm.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
            parents.append("/sys/fs/cgroup/\(hierarchy)/mydocker")
        }
        for parent in parents {
            guard let enumerator = fm.enumerator(atPath: parent) else { continue }
            for case let child as String in enumerator {
                var isDir: ObjCBool = false
                let path = parent + "/" + child
                if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { result.insert(path) }
            }
        }
        return result
    }

    struct ProcessInfo {
        let pid: pid_t
        let command: String
    }

    /// Live descendants of `root`, from the parent PIDs in /proc/PID/stat. Zombies count: a zombie is
    /// a process somebody forgot to wait for.
    static func descendants(of root: pid_t) -> [ProcessInfo] {
        var parent: [pid_t: pid_t] = [:]
        var command: [pid_t: String] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry),
                let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 1, let ppid = pid_t(fields[1]) else { continue }
            parent[pid] = ppid
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            command[pid] =
                String(decoding: cmdline, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
                + (fields[0] == "Z" ? " <zombie>" : "")
        }
        return parent.keys.sorted().filter { pid in
            var current = parent[pid]
            while let p = current, p > 1 {
                if p == root { return true }
                current = parent[p]
            }
            return false
        }.map { ProcessInfo(pid: $0, command: command[$0] ?? "?") }
    }
}
