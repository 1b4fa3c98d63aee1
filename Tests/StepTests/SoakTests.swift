import Foundation
import Testing

extension Steps {
    /// Reliability under load: hundreds of mixed operations on step10 (MYDOCKER_SOAK_OPERATIONS,
    /// default 600; the VM check runs fewer), chosen by the seeded generator (MYDOCKER_TEST_SEED
    /// replays a run), against a model of what should exist. Every
    /// operation's exit code and output is checked as it happens; every few operations `ps -a` must
    /// match the model and the only processes left must be the running containers' PID 1s. At the
    /// end, after `rm -f` of what is left: no record, no layer, nothing outside images/, and (the
    /// sandbox's residue check) no mount, cgroup or process.
    @Suite("Reliability: soak", .timeLimit(.minutes(25)))
    struct ReliabilitySoakTests {
        /// What the test believes about one container.
        struct Model {
            var running: Bool
            /// The image it was started from.
            var image: String
            /// What it wrote to /marker (sleepers only), so exec and commit can be checked.
            var marker: String?
        }

        @Test("random runs, execs, stops, removals, commits, OOM kills and failures leave nothing behind")
        func soak() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                var containers: [String: Model] = [:]
                /// Committed images and the marker each must contain.
                var images: [String: String] = [:]
                var history: [String] = []
                var done: [String: Int] = [:]
                let operations = Self.operations
                let began = Date()

                func pick(_ list: [String]) -> String { list[Harness.random(in: 0...(list.count - 1))] }
                func record(_ what: String, _ r: RunResult) {
                    history.append("#\(history.count) \(what): \(r.commandLine) -> \(r.exitCode)")
                    done[what, default: 0] += 1
                }
                /// Evidence for a failed expectation: the operation and the last few before it.
                func context(_ r: RunResult) -> String {
                    "\(r)\nlast operations:\n" + history.suffix(8).joined(separator: "\n")
                }
                /// A container may use an image while its layer is mounted: running or exited, until rm.
                func inUse(_ image: String) -> Bool { containers.values.contains { $0.image == image } }

                for index in 0..<operations {
                    let names = containers.keys.sorted()
                    let running = names.filter { containers[$0]!.running }
                    let sleepers = running.filter { containers[$0]!.marker != nil }
                    let code = Int32(Harness.random(in: 1...120))
                    switch Harness.random(in: 0...99) {
                    case 0..<14:
                        // A foreground run: exit code and output pass through, nothing stays.
                        let r = box.run(["run", "busybox", "sh", "-c", "echo fg-\(code); exit \(code)"])
                        record("run", r)
                        #expect(r.exitCode == code && r.stdout == "fg-\(code)\n", "\(context(r))")
                    case 14..<20:
                        // A command that does not exist: 127, one line.
                        let r = box.run(["run", "busybox", "no-such-command-\(code)"])
                        record("run 127", r)
                        #expect(r.exitCode == 127 && r.stderrLines.count == 1, "\(context(r))")
                    case 20..<25:
                        // Over the memory limit: the kernel's OOM killer, SIGKILL, 128+9.
                        let r = box.run([
                            "run", "-m", "8m", "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=32M",
                            "count=1",
                        ])
                        record("run OOM", r)
                        #expect(r.exitCode == 137, "Expected the OOM killer's 137\n\(context(r))")
                    case 25..<42 where running.count < 6:
                        // A detached container: a sleeper that wrote a marker, or one that exits at once.
                        let name = box.newName()
                        let sleeper = Harness.random(in: 0...2) > 0
                        let fromCommitted = !images.isEmpty && Harness.random(in: 0...3) == 0
                        let image = fromCommitted ? pick(images.keys.sorted()) : "busybox"
                        let marker = "marker-\(Harness.random(in: 100_000...999_999))"
                        let script =
                            sleeper
                            ? "echo \(marker) > /marker; echo started; exec sleep 300" : "exit \(code)"
                        let r = box.run(["run", "-d", "--name", name, image, "sh", "-c", script])
                        record("run -d", r)
                        #expect(r.exitCode == 0 && r.stdout.count == 13, "\(context(r))")
                        guard r.exitCode == 0 else { break }
                        containers[name] = Model(
                            running: sleeper, image: image, marker: sleeper ? marker : nil)
                        if sleeper {
                            // The marker is what exec and commit look for: wait until it is written.
                            let written = waitUntil {
                                FileManager.default.fileExists(
                                    atPath: box.root + "/overlay/\(name)/upper/marker")
                                    && box.run(["logs", name]).stdout == "started\n"
                            }
                            #expect(written, "\(name) never wrote its marker\n\(context(r))")
                        } else {
                            #expect(
                                waitUntil { Self.status(box, name) == "exited" },
                                "\(name) never exited\n\(context(r))")
                        }
                    case 42..<57 where !names.isEmpty:
                        // exec: into a running container it sees the container's files; else refused.
                        let name = pick(names)
                        let r = box.run(["exec", name, "sh", "-c", "cat /marker; exit \(code)"])
                        record("exec", r)
                        if let model = containers[name], model.running, let marker = model.marker {
                            #expect(r.exitCode == code && r.stdout == marker + "\n", "\(context(r))")
                        } else {
                            #expect(
                                r.exitCode == 125
                                    && r.stderrLines == ["step10: container '\(name)' is not running"],
                                "\(context(r))")
                        }
                    case 57..<65 where !running.isEmpty:
                        // stop -t 0: SIGKILL at once.
                        let name = pick(running)
                        let r = box.run(["stop", "-t", "0", name])
                        record("stop", r)
                        #expect(r.exitCode == 0 && r.stdout == name + "\n", "\(context(r))")
                        containers[name]?.running = false
                    case 65..<77 where !names.isEmpty:
                        // rm: refused for a running container without -f, which keeps running.
                        let name = pick(names)
                        let force = Harness.random(in: 0...1) == 0
                        let r = box.run(["rm"] + (force ? ["-f"] : []) + [name])
                        record(force ? "rm -f" : "rm", r)
                        if containers[name]!.running && !force {
                            #expect(
                                r.exitCode == 125
                                    && r.stderrLines == [
                                        "step10: container '\(name)' is running (stop it first, or use rm -f)"
                                    ], "\(context(r))")
                        } else {
                            #expect(r.exitCode == 0 && r.stdout == name + "\n", "\(context(r))")
                            #expect(
                                !FileManager.default.fileExists(atPath: box.root + "/overlay/\(name)"),
                                "rm left overlay/\(name)\n\(context(r))")
                            containers[name] = nil
                        }
                    case 77..<85 where !sleepers.isEmpty:
                        // commit: a new image, or -f over one of ours (refused while a container uses it).
                        let name = pick(sleepers)
                        let replace = images.count >= 6
                        let image = replace ? pick(images.keys.sorted()) : "soak-\(images.count)"
                        let r = box.run(["commit"] + (replace ? ["-f"] : []) + [name, image])
                        record("commit", r)
                        if replace && inUse(image) {
                            #expect(
                                r.exitCode == 125 && r.stderr.contains("is in use by a running container"),
                                "\(context(r))")
                        } else {
                            #expect(
                                r.exitCode == 0 && r.stdout == box.root + "/images/\(image).tar\n",
                                "\(context(r))")
                            images[image] = containers[name]!.marker
                        }
                    case 85..<92 where !images.isEmpty:
                        // A foreground run of a committed image holds the committed files.
                        let image = pick(images.keys.sorted())
                        let r = box.run(["run", image, "cat", "/marker"])
                        record("run committed", r)
                        #expect(r.exitCode == 0 && r.stdout == images[image]! + "\n", "\(context(r))")
                    default:
                        // ps -a, checked below, and logs of a detached container.
                        if let name = sleepers.first {
                            let r = box.run(["logs", name])
                            record("logs", r)
                            #expect(r.exitCode == 0 && r.stdout == "started\n", "\(context(r))")
                        }
                        Self.checkModel(box, containers, history)
                    }
                    if index % 20 == 19 { Self.checkModel(box, containers, history) }
                }

                // Everything that is left goes through the runtime's own rm -f.
                for name in containers.keys.sorted() {
                    let r = box.run(["rm", "-f", name])
                    #expect(r.exitCode == 0 && r.stdout == name + "\n", "\(r)")
                }
                containers = [:]
                Self.checkModel(box, containers, history)
                let fm = FileManager.default
                for directory in ["containers", "overlay"] {
                    let left = (try? fm.contentsOfDirectory(atPath: box.root + "/" + directory)) ?? []
                    #expect(left.isEmpty, "\(directory)/ is not empty after rm -f of everything: \(left)")
                }
                let top = Set((try? fm.contentsOfDirectory(atPath: box.root)) ?? [])
                #expect(
                    top.isSubset(of: ["images", "containers", "overlay"]), "files outside images/: \(top)")
                let expectedImages = Set(
                    (["busybox"] + images.keys).flatMap { [$0, $0 + ".tar", "." + $0 + ".lock"] })
                let imageEntries = Set((try? fm.contentsOfDirectory(atPath: box.root + "/images")) ?? [])
                #expect(
                    imageEntries.isSubset(of: expectedImages) && imageEntries.contains("busybox.tar"),
                    "images/ holds \(imageEntries.sorted()), expected only \(expectedImages.sorted())")
                box.reapOrphans()
                let residue = box.residue()
                #expect(residue.isEmpty, "left on the machine:\n\(residue.joined(separator: "\n"))")
                // Most iterations run a command (the rest only check ps -a); how long they took is
                // printed, never asserted: a slower machine is not a failure.
                let summary =
                    "\(history.count) commands in \(operations) operations: \(done.sorted { $0.key < $1.key })"
                #expect(history.count >= operations / 4, "\(summary)")
                let seconds = Int(Date().timeIntervalSince(began))
                FileHandle.standardError.write(Data("soak: \(summary), \(seconds) s\n".utf8))
            }
        }

        /// How many operations the soak runs: MYDOCKER_SOAK_OPERATIONS, or 600.
        static let operations: Int = {
            let text = ProcessInfo.processInfo.environment["MYDOCKER_SOAK_OPERATIONS"] ?? ""
            return Int(text).map { max($0, 1) } ?? 600
        }()

        /// `ps -a` lists exactly the model's containers with the model's status, and the only
        /// processes under the test are the running containers' PID 1s.
        static func checkModel(_ box: Sandbox, _ containers: [String: Model], _ history: [String]) {
            let ps = box.run(["ps", "-a"])
            var listed: [String: String] = [:]
            for row in ps.stdout.split(separator: "\n").dropFirst() {
                let cells = row.split(separator: " ")
                if cells.count >= 3 { listed[String(cells[1])] = String(cells[cells.count - 2]) }
            }
            let expected = containers.mapValues { $0.running ? "running" : "exited" }
            let recent = history.suffix(8).joined(separator: "\n")
            #expect(
                ps.exitCode == 0 && listed == expected,
                "ps -a does not match the model \(expected.sorted { $0.key < $1.key })\n\(ps)\nlast operations:\n\(recent)"
            )
            // Exited detached containers stay zombies of ours until collected.
            box.reapOrphans()
            let processes = MachineState.descendants(of: getpid())
            let runningCount = containers.values.filter(\.running).count
            #expect(
                processes.count == runningCount,
                "\(runningCount) running containers, but these processes: \(processes.map { "\($0.pid) \($0.command)" })"
            )
        }

        /// The STATUS column of `ps -a` for `name`.
        static func status(_ box: Sandbox, _ name: String) -> String? {
            for row in box.run(["ps", "-a"]).stdout.split(separator: "\n").dropFirst() {
                let cells = row.split(separator: " ")
                if cells.count >= 3 && cells[1] == name { return String(cells[cells.count - 2]) }
            }
            return nil
        }
    }
}
