import Foundation
import Testing

extension Steps {
    /// Records on a root that several steps and several commands share (all steps default to
    /// /var/lib/mydocker). A step manages the containers of every earlier step and refuses, with one
    /// line, those of a later one, and lists both; it never deletes a record it cannot read. Every
    /// read-modify-write of a record holds the container's flock(2), so `stop` racing `run -d` waits
    /// for the PID instead of writing back a record without one; writers never share a temporary
    /// file. A name never shadows another container's ID. `ps` prints control characters escaped.
    @Suite("Records: steps sharing one root, locks, names and IDs, escaped ps", .timeLimit(.minutes(5)))
    struct RecordSafetyTests {
        @Test(
            "step10 lists, stops and removes a container an earlier step started: the process dies, its cgroup and layer go",
            arguments: [
                // step09's record has no `environment`: step10 used to drop it, and rm -f left it running
                ("step09", ["stop", "-t", "0"]),
                ("step09", ["rm", "-f"]),
                // step08's record lacks the same field
                ("step08", ["rm", "-f"]),
            ])
        func laterStepManagesEarlierContainer(creator: String, command: [String]) throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let started = box.run(
                    step: creator, ["run", "-d", "--name", name, "busybox", "sleep", "600"])
                #expect(started.exitCode == 0, "\(started)")
                let id = started.stdout.trimmingCharacters(in: .newlines)
                let pid = recordedPID(box, name)
                let cgroups = cgroupsNamed(id)
                #expect(
                    pid > 0 && !cgroups.isEmpty, "no PID or no cgroup for \(name)\n\(recordText(box, name))")

                let ps = box.run(["ps", "-a"])
                #expect(
                    psRow(ps.stdout, name).map { [$0[0], $0[$0.count - 2], $0[$0.count - 1]] }
                        == [id, "running", String(pid)],
                    "Expected step10 ps -a to list \(creator)'s \(name) as running, PID \(pid)\n\(ps)")

                let r = box.run(command + [name])
                #expect(r.exitCode == 0 && r.stdout == name + "\n" && r.stderr.isEmpty, "\(r)")
                #expect(
                    processState(pid) == nil || processState(pid) == "Z",
                    "\(command.joined(separator: " ")) succeeded, but PID \(pid) of \(name) still runs")
                if command[0] == "stop" {
                    let after = box.run(["ps", "-a"])
                    #expect(psRow(after.stdout, name)?.dropLast().last == "exited", "\(after)")
                    let removed = box.run(["rm", name])
                    #expect(removed.exitCode == 0 && removed.stdout == name + "\n", "\(removed)")
                }
                #expect(stateEntries(box.root).isEmpty, "left: \(stateEntries(box.root))")
                #expect(cgroupsNamed(id).isEmpty, "cgroups left: \(cgroupsNamed(id))")
            }
        }

        @Test(
            "an earlier step lists a later step's container and refuses to stop or remove it, with one line",
            arguments: [("step08", "step10"), ("step08", "step09"), ("step09", "step10")])
        func earlierStepRefusesLaterContainer(reader: String, creator: String) throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let started = box.run(
                    step: creator, ["run", "-d", "--name", name, "busybox", "sleep", "600"])
                #expect(started.exitCode == 0, "\(started)")
                let id = started.stdout.trimmingCharacters(in: .newlines)
                let pid = recordedPID(box, name)
                let before = recordText(box, name)
                let refusal =
                    "\(reader): container '\(name)' was created by \(creator): manage it with \(creator)"

                let ps = box.run(step: reader, ["ps", "-a"])
                #expect(
                    ps.exitCode == 0
                        && psRow(ps.stdout, name).map { [$0[0], $0[$0.count - 2]] } == [id, "unknown"]
                        && ps.stderrLines == [Substring(refusal)],
                    "Expected \(reader) ps -a to list \(name) as unknown and say why\n\(ps)")
                for command in [["stop", "-t", "0"], ["rm"], ["rm", "-f"]] {
                    let r = box.run(step: reader, command + [name])
                    #expect(
                        r.exitCode == 125 && r.stderrLines == [Substring(refusal)] && r.stdout.isEmpty,
                        "Expected \(refusal.debugDescription)\n\(r)")
                }
                #expect(recordText(box, name) == before, "the record changed")
                #expect(processState(pid) == "S", "PID \(pid) of \(name) is no longer running")
                #expect(!cgroupsNamed(id).isEmpty, "the cgroup of \(name) is gone")
                let removed = box.run(step: creator, ["rm", "-f", name])
                #expect(removed.exitCode == 0 && removed.stdout == name + "\n", "\(removed)")
            }
        }

        @Test(
            "a hand-written record of step99 is listed and refused with one line, and neither it nor its process is touched",
            arguments: ["step08", "step09", "step10"])
        func futureStepRecordIsRefused(step: String) throws {
            try withSandbox(step) { box in
                // A live process that the record names exactly (PID and start time): a step that
                // took the record for its own would kill it.
                let process = Spawned(["/bin/sleep", "60"])
                defer {
                    kill(process.pid, SIGKILL)
                    _ = process.finish()
                }
                #expect(waitUntil { startTime(of: process.pid) != nil }, "the sleep never started")
                let name = box.newName()
                let directory = box.root + "/containers/\(name)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let record = """
                    {"step": "step99", "id": "99aa99aa99aa", "name": "\(name)", "pid": \(process.pid),
                     "pidStartTime": \(startTime(of: process.pid) ?? 0), "command": ["sleep", "60"],
                     "created": "2026-11-25 15:00:00", "status": "running", "image": "busybox",
                     "volumes": [], "detached": true, "environment": [], "network": "lab"}
                    """
                try record.write(toFile: directory + "/config.json", atomically: false, encoding: .utf8)
                let refusal = "\(step): container '\(name)' was created by step99: manage it with step99"

                let ps = box.run(["ps"])
                #expect(
                    ps.exitCode == 0
                        && psRow(ps.stdout, name).map { [$0[0], $0[$0.count - 2]] }
                            == ["99aa99aa99aa", "unknown"]
                        && ps.stderrLines == [Substring(refusal)],
                    "Expected ps to list \(name) as unknown and say why\n\(ps)")
                for command in [
                    ["stop", name], ["rm", name], ["rm", "-f", name], ["rm", "-f", "99aa99aa99aa"],
                ] {
                    let r = box.run(command)
                    #expect(
                        r.exitCode == 125 && r.stderrLines == [Substring(refusal)],
                        "Expected \(refusal.debugDescription)\n\(r)")
                }
                #expect(
                    (try? String(contentsOfFile: directory + "/config.json", encoding: .utf8)) == record,
                    "the record was changed or removed")
                #expect(processState(process.pid) == "S", "the process the record names was killed")
            }
        }

        @Test(
            "rm -f refuses a record it cannot read, and still removes a directory that has no record at all",
            arguments: ["step08", "step09", "step10"])
        func unreadableRecordIsKept(step: String) throws {
            try withSandbox(step) { box in
                let broken = box.newName()
                let brokenRecord = box.root + "/containers/\(broken)/config.json"
                try FileManager.default.createDirectory(
                    atPath: box.root + "/containers/\(broken)", withIntermediateDirectories: true)
                try "{\"id\": \"half a rec".write(toFile: brokenRecord, atomically: false, encoding: .utf8)
                // What a runtime killed between its mkdir and its first record leaves.
                let empty = box.newName()
                try FileManager.default.createDirectory(
                    atPath: box.root + "/containers/\(empty)", withIntermediateDirectories: true)

                let ps = box.run(["ps", "-a"])
                #expect(
                    ps.exitCode == 0 && psRow(ps.stdout, broken)?.dropLast().last == "unknown"
                        && psRow(ps.stdout, empty)?.dropLast().last == "unknown" && ps.stderrLines.count == 2,
                    "Expected ps -a to list both directories as unknown, with one line each on stderr\n\(ps)")
                let r = box.run(["rm", "-f", broken])
                #expect(
                    r.exitCode == 125
                        && r.stderrLines == ["\(step): read \(brokenRecord): not a valid container record"],
                    "\(r)")
                #expect(
                    FileManager.default.fileExists(atPath: brokenRecord),
                    "rm -f deleted a record it cannot read")
                let cleaned = box.run(["rm", "-f", empty])
                #expect(cleaned.exitCode == 0 && cleaned.stdout == empty + "\n", "\(cleaned)")
                #expect(stateEntries(box.root) == ["containers/\(broken)"], "\(stateEntries(box.root))")
            }
        }

        @Test(
            "stop while run -d is paused between its two record writes waits for the PID, then really stops the container",
            arguments: ["step08", "step09", "step10"])
        func stopWaitsForRunsSecondWrite(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                // Paused after the first record (status created, PID 0) and the layer, before the clone.
                let runtime = box.start(
                    ["run", "-d", "--name", name, "busybox", "sleep", "600"],
                    environment: ["MYDOCKER_TEST_PAUSE_AT": "overlay"])
                defer {
                    if !runtime.hasExited { kill(runtime.pid, SIGKILL) }
                    _ = runtime.finish()
                }
                try #require(
                    waitUntil { processState(runtime.pid) == "T" }, "the runtime never paused at overlay")
                let stop = box.start(["stop", "-t", "0", name])
                // Either it has finished (with the record as it was) or it waits for the lock.
                #expect(
                    waitUntil { stop.hasExited || isWaitingForLock(stop.pid) },
                    "stop neither finished nor waited for a lock")
                kill(runtime.pid, SIGCONT)
                let started = runtime.finish()
                let stopped = stop.finish()
                #expect(started.exitCode == 0, "\(started)")
                #expect(stopped.exitCode == 0 && stopped.stdout == name + "\n", "\(stopped)")

                let record = readRecord(box, name)
                let pid = recordedPID(box, name)
                #expect(
                    pid > 0 && (record?["pidStartTime"] as? Int ?? 0) > 0
                        && record?["status"] as? String == "exited",
                    "Expected the record to keep the PID and say exited\n\(recordText(box, name))")
                #expect(
                    processState(pid) == nil || processState(pid) == "Z",
                    "stop said it stopped \(name), but PID \(pid) runs\n\(started)\n\(stopped)")
                let removed = box.run(["rm", name])
                #expect(removed.exitCode == 0 && removed.stdout == name + "\n", "\(removed)")
                #expect(stateEntries(box.root).isEmpty, "left: \(stateEntries(box.root))")
            }
        }

        @Test(
            "eight stops of one container at once all succeed, and leave one whole record and no temporary file"
        )
        func concurrentWritersNeverCollide() throws {
            try withSandbox("step10", image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let started = box.run(["run", "-d", "--name", name, "busybox", "sleep", "600"])
                #expect(started.exitCode == 0, "\(started)")
                let pid = recordedPID(box, name)
                for round in 1...12 {
                    // Every stop writes the record back (status exited), the first one after killing.
                    let stops = (1...8).map { _ in box.start(["stop", "-t", "0", name]) }
                    for r in stops.map({ $0.finish() }) {
                        #expect(
                            r.exitCode == 0 && r.stdout == name + "\n" && r.stderr.isEmpty,
                            "round \(round)\n\(r)")
                    }
                    let record = readRecord(box, name)
                    #expect(
                        record?["status"] as? String == "exited" && recordedPID(box, name) == pid,
                        "round \(round): \(recordText(box, name))")
                    let files =
                        (try? FileManager.default.contentsOfDirectory(
                            atPath: box.root + "/containers/\(name)"))
                    #expect(
                        files?.sorted() == ["config.json", "container.log"],
                        "round \(round): containers/\(name) holds \(String(describing: files))")
                }
            }
        }

        @Test(
            "a name that is another container's ID is refused with one line, and rm ID still removes that container",
            arguments: ["step08", "step09", "step10"])
        func nameCannotShadowID(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let first = box.run(["run", "-d", "--name", name, "busybox", "sleep", "600"])
                #expect(first.exitCode == 0, "\(first)")
                let id = first.stdout.trimmingCharacters(in: .newlines)
                let second = box.run(["run", "-d", "--name", id, "busybox", "sleep", "600"])
                #expect(
                    second.exitCode == 125
                        && second.stderrLines
                            == [
                                "\(step): container name '\(id)' is the ID of container '\(name)' (choose another name)"
                            ],
                    "\(second)")
                #expect(
                    stateEntries(box.root) == ["containers/\(name)", "overlay/\(name)"],
                    "\(stateEntries(box.root))")
                let rm = box.run(["rm", "-f", id])
                #expect(
                    rm.exitCode == 0 && rm.stdout == name + "\n", "rm -f \(id) did not remove \(name)\n\(rm)")
                #expect(stateEntries(box.root).isEmpty, "left: \(stateEntries(box.root))")
            }
        }

        @Test(
            "ps prints a command's newline, ESC, C1 control and backslash escaped, on one row",
            arguments: ["step08", "step09", "step10"])
        func psEscapesControlCharacters(step: String) throws {
            try withSandbox(step, image: true, runtimeRemove: ["rm", "-f"]) { box in
                let name = box.newName()
                let r = box.run(["run", "-d", "--name", name, "busybox", "echo", "a\nb\u{1b}[2J\u{9b}c\\d"])
                #expect(r.exitCode == 0, "\(r)")
                let ps = box.run(["ps", "-a"])
                let expected = #"echo a\nb\x1b[2J\u009bc\\d"#
                #expect(
                    ps.exitCode == 0 && ps.stdout.split(separator: "\n").count == 2
                        && !ps.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x9b }
                        && ps.stdout.contains("   \(expected)   "),
                    "Expected the command as \(expected), on the one row\n\(ps)")
            }
        }
    }
}

// MARK: helpers

/// The cells of `name`'s row in `ps` output (CREATED, which holds a space, is two cells).
private func psRow(_ text: String, _ name: String) -> [String]? {
    text.split(separator: "\n").dropFirst().map { $0.split(separator: " ").map(String.init) }.first {
        $0.count > 2 && $0[1] == name
    }
}

private func readRecord(_ box: Sandbox, _ name: String) -> [String: Any]? {
    let url = URL(fileURLWithPath: box.root + "/containers/\(name)/config.json")
    guard let data = try? Data(contentsOf: url) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
}

private func recordText(_ box: Sandbox, _ name: String) -> String {
    (try? String(contentsOfFile: box.root + "/containers/\(name)/config.json", encoding: .utf8))
        ?? "(no record)"
}

private func recordedPID(_ box: Sandbox, _ name: String) -> pid_t {
    pid_t(readRecord(box, name)?["pid"] as? Int ?? 0)
}

/// Entries of containers/ and overlay/.
private func stateEntries(_ root: String) -> [String] {
    ["containers", "overlay"].flatMap { directory in
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + directory)) ?? []).map {
            directory + "/" + $0
        }
    }.sorted()
}

/// The container cgroups on the machine named by this ID (mydocker/ID in any hierarchy).
private func cgroupsNamed(_ id: String) -> [String] {
    MachineState.readContainerCgroups().filter { $0.hasSuffix("/mydocker/\(id)") }.sorted()
}

/// Field 3 of /proc/PID/stat (R, S, T, Z...), or nil when there is no such process.
private func processState(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}

/// Field 22 of /proc/PID/stat.
private func startTime(of pid: pid_t) -> UInt64? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
    return fields.count > 19 ? UInt64(fields[19]) : nil
}

/// /proc/locks marks a request that waits for a lock with `->`: `2: -> FLOCK ADVISORY WRITE PID ...`.
private func isWaitingForLock(_ pid: pid_t) -> Bool {
    let locks = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
    return locks.split(separator: "\n").contains { line in
        let fields = line.split(separator: " ")
        return fields.count > 5 && fields[1] == "->" && fields[5] == Substring(String(pid))
    }
}
