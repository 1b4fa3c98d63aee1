import Foundation
import Testing

/// A real terminal for `-ti` tests: a private tmux server (its own socket) running one command in a
/// pane we can type into and read from, as a learner would.
final class Terminal {
    let socket: String
    private let box: Sandbox

    /// Starts `step ARGUMENTS` in a 120x40 pane. When the runtime exits the pane prints
    /// `[exit N]`, so the exit code can be read off the screen.
    init(_ box: Sandbox, _ arguments: [String]) throws {
        self.box = box
        socket = "mydocker-\(UUID().uuidString.prefix(8))"
        // The socket name in the pane's command line lets close() recognise the pane's shell.
        let command =
            ": \(socket); MYDOCKER_ROOT=\(shellQuote(box.root)) "
            + (box.command(box.step) + arguments).map(shellQuote).joined(separator: " ")
            + "; echo \"[exit $?]\"; sleep 600"
        let started = tmux(["new-session", "-d", "-x", "120", "-y", "40", "sh", "-c", command])
        guard started.exitCode == 0 else { throw HarnessError("tmux did not start:\n\(started)") }
    }

    deinit { close() }

    @discardableResult
    func tmux(_ arguments: [String]) -> RunResult {
        runProcess(["/usr/bin/tmux", "-L", socket, "-f", "/dev/null"] + arguments, timeout: 10)
    }

    /// Types `text` and presses Enter.
    func type(_ text: String) {
        tmux(["send-keys", "-t", "0", "-l", text])
        tmux(["send-keys", "-t", "0", "Enter"])
    }

    /// Sends a key by tmux name, e.g. `C-c`.
    func press(_ key: String) {
        tmux(["send-keys", "-t", "0", key])
    }

    var screen: String {
        tmux(["capture-pane", "-p", "-t", "0", "-S", "-100"]).stdout
    }

    /// Waits until the screen shows `text`; returns false (and the caller asserts) on timeout.
    func waitFor(_ text: String, timeout: Double = 15) -> Bool {
        waitUntil(timeout: timeout) { screen.contains(text) }
    }

    /// Waits for a root shell's prompt on the last line: `# ` (tmux trims the trailing space), or
    /// `/dir # ` where the shell shows its working directory (busybox ash).
    func waitForPrompt(timeout: Double = 15) -> Bool {
        waitUntil(timeout: timeout) {
            let last = screen.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces) ?? ""
            return last == "#" || last.hasSuffix(" #")
        }
    }

    /// The runtime's exit code once it has exited, read from the `[exit N]` line.
    func waitForExit(timeout: Double = 15) -> Int32? {
        var code: Int32?
        waitUntil(timeout: timeout) {
            let text = screen
            guard let range = text.range(of: "[exit ", options: .backwards) else { return false }
            code = Int32(text[range.upperBound...].prefix { $0.isNumber })
            return code != nil
        }
        return code
    }

    /// Kills the tmux server, and with it the pane's processes; waits until the server is gone so
    /// the residue check does not see it.
    func close() {
        tmux(["kill-server"])
        waitUntil(timeout: 5) {
            box.reapOrphans()
            return MachineState.descendants(of: getpid()).allSatisfy { !$0.command.contains(socket) }
        }
    }
}
