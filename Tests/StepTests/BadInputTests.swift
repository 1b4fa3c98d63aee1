import Foundation
import Testing

extension Steps {
    /// Reliability: whatever a learner types wrong, from step 02 to step 10, the runtime answers with
    /// exactly one line on stderr, docker's exit code (125 for the runtime's own errors, 126 for a
    /// command that cannot run, 127 for one that does not exist), and nothing half-created: no
    /// record, layer or partial image under MYDOCKER_ROOT, and (the sandbox's residue check) no
    /// mount, cgroup or process on the machine. A container that existed before the mistake is
    /// still in the state it was in.
    @Suite("Reliability: bad input", .timeLimit(.minutes(5)))
    struct ReliabilityBadInputTests {
        /// What exists before the command runs. `{name}` in a case's arguments and message is the
        /// container the setup made; `{root}` is the MYDOCKER_ROOT the command gets; `{scratch}`
        /// is a host directory beside it.
        enum Setup: Sendable {
            case none
            /// `run -d --name {name} busybox sleep 300`, still running.
            case running
            /// `run -d --name {name} busybox true`, exited.
            case exited
            /// MYDOCKER_ROOT is a relative path.
            case relativeRoot
            /// MYDOCKER_ROOT is a regular file.
            case fileRoot
            /// MYDOCKER_ROOT does not exist.
            case missingRoot
            /// MYDOCKER_ROOT holds the image but is mounted read-only.
            case readOnlyRoot
            /// The command runs as nobody (uid and gid 65534, no groups).
            case notRoot
        }

        struct Case: Sendable, CustomTestStringConvertible {
            let step: String
            let arguments: [String]
            var setup: Setup = .none
            let code: Int32
            let fragment: String

            var testDescription: String {
                "\(step) \(arguments.map(shellQuote).joined(separator: " ")) [\(setup)] -> \(code)"
            }
        }

        /// The lowest CPU number that is not online on this machine (CPU lists are checked
        /// against /sys/devices/system/cpu/online).
        static let firstOfflineCPU: Int = {
            let text =
                (try? String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)) ?? "0"
            var online = Set<Int>()
            for part in text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",") {
                let bounds = part.split(separator: "-").compactMap { Int($0) }
                if bounds.count == 2 && bounds[0] <= bounds[1] {
                    online.formUnion(bounds[0]...bounds[1])
                } else if bounds.count == 1 {
                    online.insert(bounds[0])
                }
            }
            var cpu = 0
            while online.contains(cpu) { cpu += 1 }
            return cpu
        }()

        /// A CPU past the highest online one (5 on a 2-CPU machine), and a range that starts past it
        /// (3-4 there): lists the old range check turned into a backwards range and a trap.
        static let pastOnlineCPU = highestOnlineCPU + 4
        static let pastOnlineRange = "\(highestOnlineCPU + 2)-\(highestOnlineCPU + 3)"
        static let highestOnlineCPU: Int = {
            let text =
                (try? String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)) ?? "0"
            let numbers = text.split(whereSeparator: { $0 == "," || $0 == "-" || $0 == "\n" }).compactMap {
                Int($0)
            }
            return numbers.max() ?? 0
        }()

        @Test(
            "a mistake is one line on stderr, the documented exit code, and nothing half-created",
            arguments: [
                // step02 with no subcommand at all
                Case(step: "step02", arguments: [], code: 125, fragment: "step02: no command given"),
                // a subcommand that does not exist
                Case(
                    step: "step02", arguments: ["start", "sh"], code: 125,
                    fragment: "step02: unknown command 'start' (try: step02 --help)"),
                // a flag that comes two steps later
                Case(
                    step: "step02", arguments: ["run", "--memory", "1m", "sh"], code: 125,
                    fragment: "step02: unknown flag '--memory' (see step02 run --help)"),
                // not root: refused before anything is touched
                Case(
                    step: "step02", arguments: ["run", "true"], setup: .notRoot, code: 125,
                    fragment: "step02: must be run as root"),
                // ps does not exist before step08
                Case(
                    step: "step03", arguments: ["ps"], code: 125,
                    fragment: "step03: unknown command 'ps' (try: step03 --help)"),
                // a size with an unknown unit
                Case(
                    step: "step03", arguments: ["run", "-m", "10x", "true"], code: 125,
                    fragment: "step03: invalid memory size '10x' (use a number with b, k, m or g, e.g. 100m)"),
                // zero is below docker's floor of 6m
                Case(
                    step: "step03", arguments: ["run", "-m", "0", "true"], code: 125,
                    fragment: "step03: memory size '0' is too small (minimum 6m)"),
                // a negative size
                Case(
                    step: "step03", arguments: ["run", "-m", "-1", "true"], code: 125,
                    fragment: "step03: invalid memory size '-1'"),
                // -m as the last word: no value
                Case(
                    step: "step03", arguments: ["run", "-m"], code: 125,
                    fragment: "step03: flag -m needs a value (SIZE)"),
                // a size that overflows 64 bits once the unit is applied
                Case(
                    step: "step03", arguments: ["run", "-m", "17179869184g", "true"], code: 125,
                    fragment: "step03: invalid memory size '17179869184g'"),
                // cpu.shares below the kernel's minimum of 2
                Case(
                    step: "step03", arguments: ["run", "-cpushare", "1", "true"], code: 125,
                    fragment: "step03: invalid cpu shares '1' (use a number from 2 to 262144, default 1024)"),
                // a CPU list that is not a list
                Case(
                    step: "step04", arguments: ["run", "-cpuset", "a", "true"], code: 125,
                    fragment: "step04: invalid CPU list 'a' (use e.g. 0, 0-1 or 0,2)"),
                // a range that runs backwards
                Case(
                    step: "step04", arguments: ["run", "-cpuset", "1-0", "true"], code: 125,
                    fragment: "step04: invalid CPU list '1-0'"),
                // a trailing comma
                Case(
                    step: "step04", arguments: ["run", "-cpuset", "0,", "true"], code: 125,
                    fragment: "step04: invalid CPU list '0,'"),
                // a range past the online CPUs names the first CPU that is not online, every time
                Case(
                    step: "step04",
                    arguments: [
                        "run", "-cpuset", "0-\(ReliabilityBadInputTests.firstOfflineCPU + 20)", "true",
                    ],
                    code: 125,
                    fragment:
                        "step04: CPU \(ReliabilityBadInputTests.firstOfflineCPU) in '0-\(ReliabilityBadInputTests.firstOfflineCPU + 20)' is not online"
                ),
                // a CPU past the online ones: the range check built a backwards range and trapped
                Case(
                    step: "step03",
                    arguments: ["run", "-cpuset", "\(ReliabilityBadInputTests.pastOnlineCPU)", "true"],
                    code: 125,
                    fragment:
                        "step03: CPU \(ReliabilityBadInputTests.pastOnlineCPU) in '\(ReliabilityBadInputTests.pastOnlineCPU)' is not online"
                ),
                // a range that starts past the online CPUs
                Case(
                    step: "step04",
                    arguments: ["run", "-cpuset", ReliabilityBadInputTests.pastOnlineRange, "true"],
                    code: 125,
                    fragment:
                        "step04: CPU \(ReliabilityBadInputTests.highestOnlineCPU + 2) in '\(ReliabilityBadInputTests.pastOnlineRange)' is not online"
                ),
                // the largest Int as a CPU
                Case(
                    step: "step05", arguments: ["run", "-cpuset", "9223372036854775807", "true"], code: 125,
                    fragment: "step05: CPU 9223372036854775807 in '9223372036854775807' is not online"),
                // a good CPU, then one past the online ones
                Case(
                    step: "step06",
                    arguments: ["run", "-cpuset", "0,\(ReliabilityBadInputTests.pastOnlineCPU)", "true"],
                    code: 125,
                    fragment: "step06: CPU \(ReliabilityBadInputTests.pastOnlineCPU) in '0,"),
                // a one-CPU range at the largest Int
                Case(
                    step: "step07",
                    arguments: [
                        "run", "-cpuset", "9223372036854775807-9223372036854775807", "busybox", "true",
                    ],
                    code: 125,
                    fragment: "step07: CPU 9223372036854775807 in '9223372036854775807-9223372036854775807'"),
                // the same trap in the steps that name containers
                Case(
                    step: "step08",
                    arguments: [
                        "run", "-cpuset", "\(ReliabilityBadInputTests.pastOnlineCPU)", "busybox", "true",
                    ],
                    code: 125,
                    fragment: "step08: CPU \(ReliabilityBadInputTests.pastOnlineCPU) in"),
                Case(
                    step: "step09",
                    arguments: [
                        "run", "-cpuset", ReliabilityBadInputTests.pastOnlineRange, "busybox", "true",
                    ],
                    code: 125,
                    fragment: "step09: CPU \(ReliabilityBadInputTests.highestOnlineCPU + 2) in"),
                Case(
                    step: "step10", arguments: ["run", "-cpuset", "9223372036854775807", "busybox", "true"],
                    code: 125,
                    fragment: "step10: CPU 9223372036854775807 in '9223372036854775807' is not online"),
                // a CPU number beyond 64 bits
                Case(
                    step: "step10", arguments: ["run", "-cpuset", "99999999999999999999", "busybox", "true"],
                    code: 125,
                    fragment: "step10: invalid CPU list '99999999999999999999' (use e.g. 0, 0-1 or 0,2)"),
                // a sign, which Swift's Int() accepts and the kernel's cpuset parser refuses
                Case(
                    step: "step04", arguments: ["run", "-cpuset", "+0", "true"], code: 125,
                    fragment: "step04: invalid CPU list '+0' (use e.g. 0, 0-1 or 0,2)"),
                // a sign inside a range
                Case(
                    step: "step04", arguments: ["run", "-cpuset", "0-+1", "true"], code: 125,
                    fragment: "step04: invalid CPU list '0-+1'"),
                // an empty CPU list
                Case(
                    step: "step03", arguments: ["run", "-cpuset", "", "true"], code: 125,
                    fragment: "step03: invalid CPU list '' (use e.g. 0, 0-1 or 0,2)"),
                // leading whitespace
                Case(
                    step: "step03", arguments: ["run", "-cpuset", " 0", "true"], code: 125,
                    fragment: "step03: invalid CPU list ' 0'"),
                // a newline: still one line, the newline shown escaped
                Case(
                    step: "step05", arguments: ["run", "-cpuset", "0\n", "true"], code: 125,
                    fragment: "step05: invalid CPU list '0\\n' (use e.g. 0, 0-1 or 0,2)"),
                // a digit that is not ASCII (Arabic-Indic zero)
                Case(
                    step: "step06", arguments: ["run", "-cpuset", "\u{0660}", "true"], code: 125,
                    fragment: "step06: invalid CPU list '\u{0660}'"),
                // a double dash
                Case(
                    step: "step07", arguments: ["run", "-cpuset", "0--1", "busybox", "true"], code: 125,
                    fragment: "step07: invalid CPU list '0--1'"),
                // a size past 64 bits
                Case(
                    step: "step03", arguments: ["run", "-m", "99999999999999999999g", "true"], code: 125,
                    fragment: "step03: invalid memory size '99999999999999999999g'"),
                // scientific notation
                Case(
                    step: "step03", arguments: ["run", "-m", "1e3m", "true"], code: 125,
                    fragment: "step03: invalid memory size '1e3m'"),
                // one byte below the floor
                Case(
                    step: "step03", arguments: ["run", "-m", "6291455", "true"], code: 125,
                    fragment: "step03: memory size '6291455' is too small (minimum 6m)"),
                // a negative size with a unit
                Case(
                    step: "step04", arguments: ["run", "-m", "-1m", "true"], code: 125,
                    fragment: "step04: invalid memory size '-1m'"),
                // an empty size
                Case(
                    step: "step04", arguments: ["run", "-m", "", "true"], code: 125,
                    fragment: "step04: invalid memory size '' (use a number with b, k, m or g, e.g. 100m)"),
                // a plus sign: UInt64() accepted it
                Case(
                    step: "step05", arguments: ["run", "-m", "+100m", "true"], code: 125,
                    fragment: "step05: invalid memory size '+100m'"),
                // trailing whitespace
                Case(
                    step: "step06", arguments: ["run", "-m", "100m ", "true"], code: 125,
                    fragment: "step06: invalid memory size '100m '"),
                // one past the largest 64-bit number of bytes
                Case(
                    step: "step07", arguments: ["run", "-m", "18446744073709551616", "busybox", "true"],
                    code: 125,
                    fragment: "step07: invalid memory size '18446744073709551616'"),
                // a newline after the size
                Case(
                    step: "step08", arguments: ["run", "-m", "100m\n", "busybox", "true"], code: 125,
                    fragment: "step08: invalid memory size '100m\\n'"),
                // an escape sequence is shown, not sent to the terminal
                Case(
                    step: "step08", arguments: ["run", "-m", "\u{1B}[31m100m", "busybox", "true"], code: 125,
                    fragment: "step08: invalid memory size '\\x1b[31m100m'"),
                // the Kelvin sign, which lowercased() turned into the unit k
                Case(
                    step: "step09", arguments: ["run", "-m", "10000\u{212A}", "busybox", "true"], code: 125,
                    fragment: "step09: invalid memory size '10000\u{212A}'"),
                // a fraction
                Case(
                    step: "step10", arguments: ["run", "-m", "1.5g", "busybox", "true"], code: 125,
                    fragment: "step10: invalid memory size '1.5g'"),
                // a fullwidth digit
                Case(
                    step: "step10", arguments: ["run", "-m", "\u{FF16}m", "busybox", "true"], code: 125,
                    fragment: "step10: invalid memory size '\u{FF16}m'"),
                // shares with a plus sign
                Case(
                    step: "step03", arguments: ["run", "-cpushare", "+512", "true"], code: 125,
                    fragment:
                        "step03: invalid cpu shares '+512' (use a number from 2 to 262144, default 1024)"),
                // empty shares
                Case(
                    step: "step04", arguments: ["run", "-cpushare", "", "true"], code: 125,
                    fragment: "step04: invalid cpu shares ''"),
                // shares past 64 bits
                Case(
                    step: "step05", arguments: ["run", "-cpushare", "18446744073709551616", "true"],
                    code: 125,
                    fragment: "step05: invalid cpu shares '18446744073709551616'"),
                // one above the kernel's maximum
                Case(
                    step: "step06", arguments: ["run", "-cpushare", "262145", "true"], code: 125,
                    fragment: "step06: invalid cpu shares '262145'"),
                // a carriage return and a newline
                Case(
                    step: "step10", arguments: ["run", "-cpushare", "512\r\n", "busybox", "true"], code: 125,
                    fragment: "step10: invalid cpu shares '512\\r\\n'"),
                // a container path longer than NAME_MAX: the kernel's error, one line
                Case(
                    step: "step06",
                    arguments: ["run", "-v", "{scratch}/vol:/" + String(repeating: "a", count: 300), "true"],
                    code: 125,
                    fragment: "File name too long (ENAMETOOLONG)"),
                // a host path longer than PATH_MAX
                Case(
                    step: "step10",
                    arguments: [
                        "run", "-v", "{scratch}/" + String(repeating: "a/", count: 2100) + ":/data",
                        "busybox",
                        "true",
                    ],
                    code: 125,
                    fragment: "File name too long (ENAMETOOLONG)"),
                // -v is step06's
                Case(
                    step: "step04", arguments: ["run", "-v", "/a:/b", "true"], code: 125,
                    fragment: "step04: unknown flag '-v' (see step04 run --help)"),
                // no such program in the image: 127
                Case(
                    step: "step05", arguments: ["run", "no-such-command-xyz"], code: 127,
                    fragment: "step05: exec no-such-command-xyz: No such file or directory (ENOENT)"),
                // a file that is not executable: 126
                Case(
                    step: "step05", arguments: ["run", "/etc/passwd"], code: 126,
                    fragment: "step05: exec /etc/passwd: Permission denied (EACCES)"),
                // a directory is not executable either: 126
                Case(
                    step: "step05", arguments: ["run", "/etc"], code: 126,
                    fragment: "step05: exec /etc: Permission denied (EACCES)"),
                // a relative MYDOCKER_ROOT would put mounts wherever the user stands
                Case(
                    step: "step05", arguments: ["run", "true"], setup: .relativeRoot, code: 125,
                    fragment: "step05: MYDOCKER_ROOT must be an absolute path, got '{root}'"),
                // an unwritable MYDOCKER_ROOT: the image cannot be unpacked
                Case(
                    step: "step05", arguments: ["run", "true"], setup: .readOnlyRoot, code: 125,
                    fragment: "Read-only file system (EROFS)"),
                // not root
                Case(
                    step: "step05", arguments: ["run", "true"], setup: .notRoot, code: 125,
                    fragment: "step05: must be run as root"),
                // --name is step08's
                Case(
                    step: "step05", arguments: ["run", "--name", "x", "true"], code: 125,
                    fragment: "step05: unknown flag '--name' (see step05 run --help)"),
                // a volume without a colon
                Case(
                    step: "step06", arguments: ["run", "-v", "/tmp", "true"], code: 125,
                    fragment: "step06: invalid volume '/tmp': use -v /host/dir:/container/dir"),
                // a relative host path
                Case(
                    step: "step06", arguments: ["run", "-v", "relative:/data", "true"], code: 125,
                    fragment: "step06: invalid volume 'relative:/data': host path 'relative' must be absolute"
                ),
                // a relative container path
                Case(
                    step: "step06", arguments: ["run", "-v", "/srv/x:data", "true"], code: 125,
                    fragment: "step06: invalid volume '/srv/x:data': container path 'data' must be absolute"),
                // the container's root as the target
                Case(
                    step: "step06", arguments: ["run", "-v", "/srv/x:/", "true"], code: 125,
                    fragment: "step06: invalid volume '/srv/x:/': container path '/' cannot be the root"),
                // .. in the target could walk out of the container's root
                Case(
                    step: "step06", arguments: ["run", "-v", "/srv/x:/a/../../b", "true"], code: 125,
                    fragment:
                        "step06: invalid volume '/srv/x:/a/../../b': container path '/a/../../b' must not contain '..'"
                ),
                // a host file where a directory is needed
                Case(
                    step: "step06", arguments: ["run", "-v", "/etc/passwd:/data", "true"], code: 125,
                    fragment:
                        "step06: invalid volume '/etc/passwd:/data': host path '/etc/passwd' is not a directory"
                ),
                // three fields (docker's :ro is not supported)
                Case(
                    step: "step06", arguments: ["run", "-v", "/srv/x:/data:ro", "true"], code: 125,
                    fragment: "step06: invalid volume '/srv/x:/data:ro': use -v /host/dir:/container/dir"),
                // -v as the last word
                Case(
                    step: "step06", arguments: ["run", "-v"], code: 125,
                    fragment: "step06: flag -v needs a value (SRC:DST)"),
                // a target that is a file in the image fails inside init, after the clone: still one line
                Case(
                    step: "step06", arguments: ["run", "-v", "{scratch}/vol:/etc/passwd", "true"], code: 125,
                    fragment: "step06: volume target /etc/passwd: /etc/passwd is not a directory"),
                // an image that is not there
                Case(
                    step: "step07", arguments: ["run", "nosuch", "true"], code: 125,
                    fragment: "step07: rootfs image 'nosuch' not found under {root}/images"),
                // an image name with a slash could reach outside images/
                Case(
                    step: "step07", arguments: ["run", "a/b", "true"], code: 125,
                    fragment:
                        "step07: invalid image name 'a/b' (lowercase letters, digits, '_', '.', '-'; no '/')"),
                // .. as an image name
                Case(
                    step: "step07", arguments: ["run", "../busybox", "true"], code: 125,
                    fragment: "step07: invalid image name '../busybox'"),
                // an image but no command
                Case(
                    step: "step07", arguments: ["run", "busybox"], code: 125,
                    fragment: "step07: run needs an image and a command (try: step07 run -ti busybox sh)"),
                // a name that is a path
                Case(
                    step: "step08", arguments: ["run", "--name", "../x", "busybox", "true"], code: 125,
                    fragment: "step08: invalid container name '../x'"),
                // an empty name
                Case(
                    step: "step08", arguments: ["run", "--name", "", "busybox", "true"], code: 125,
                    fragment: "step08: invalid container name ''"),
                // a name starting with a dash
                Case(
                    step: "step08", arguments: ["run", "--name", "-x", "busybox", "true"], code: 125,
                    fragment: "step08: invalid container name '-x'"),
                // a name taken by a running container: that container is left alone
                Case(
                    step: "step08", arguments: ["run", "-d", "--name", "{name}", "busybox", "true"],
                    setup: .running,
                    code: 125,
                    fragment:
                        "step08: container name '{name}' is already in use (remove it first: step08 rm -f {name})"
                ),
                // -d has no terminal
                Case(
                    step: "step08", arguments: ["run", "-d", "-t", "busybox", "true"], code: 125,
                    fragment:
                        "step08: -d cannot be combined with -t or -i (a detached container has no terminal)"),
                // logs of an unknown container
                Case(
                    step: "step08", arguments: ["logs", "t-missing"], code: 125,
                    fragment: "step08: no such container: t-missing"),
                // stop of an unknown container
                Case(
                    step: "step08", arguments: ["stop", "t-missing"], code: 125,
                    fragment: "step08: no such container: t-missing"),
                // rm of an unknown container
                Case(
                    step: "step08", arguments: ["rm", "t-missing"], code: 125,
                    fragment: "step08: no such container: t-missing"),
                // rm -f of a name that never existed
                Case(
                    step: "step08", arguments: ["rm", "-f", "t-missing"], code: 125,
                    fragment: "step08: no such container: t-missing"),
                // rm of a running container without -f: it keeps running
                Case(
                    step: "step08", arguments: ["rm", "{name}"], setup: .running, code: 125,
                    fragment: "step08: container '{name}' is running (stop it first, or use rm -f)"),
                // a stop timeout that is not a number
                Case(
                    step: "step08", arguments: ["stop", "-t", "x", "{name}"], setup: .running, code: 125,
                    fragment: "step08: invalid stop timeout 'x' (whole seconds, 0 or more)"),
                // a negative stop timeout
                Case(
                    step: "step08", arguments: ["stop", "-t", "-1", "{name}"], setup: .running, code: 125,
                    fragment: "step08: invalid stop timeout '-1'"),
                // an empty stop timeout
                Case(
                    step: "step08", arguments: ["stop", "-t", "", "t-missing"], code: 125,
                    fragment: "step08: invalid stop timeout '' (whole seconds, 0 or more)"),
                // a stop timeout past 64 bits
                Case(
                    step: "step09", arguments: ["stop", "-t", "99999999999999999999", "t-missing"], code: 125,
                    fragment: "step09: invalid stop timeout '99999999999999999999'"),
                // a fractional stop timeout
                Case(
                    step: "step10", arguments: ["stop", "-t", "1.5", "t-missing"], code: 125,
                    fragment: "step10: invalid stop timeout '1.5'"),
                // a stop timeout with whitespace
                Case(
                    step: "step10", arguments: ["stop", "-t", " 5", "t-missing"], code: 125,
                    fragment: "step10: invalid stop timeout ' 5'"),
                // -t as the last word
                Case(
                    step: "step08", arguments: ["stop", "-t"], code: 125,
                    fragment: "step08: flag -t needs a value (SECONDS)"),
                // rm with two names
                Case(
                    step: "step08", arguments: ["rm", "a", "b"], code: 125,
                    fragment: "step08: rm needs exactly one container name (see step08 rm --help)"),
                // ps takes no arguments
                Case(
                    step: "step08", arguments: ["ps", "x"], code: 125,
                    fragment: "step08: ps takes no arguments"),
                // a flag ps does not know
                Case(
                    step: "step08", arguments: ["ps", "-q"], code: 125,
                    fragment: "step08: unknown flag '-q' (see step08 ps --help)"),
                // not root, for a command that only reads
                Case(
                    step: "step08", arguments: ["ps"], setup: .notRoot, code: 125,
                    fragment: "step08: must be run as root"),
                // exec into an unknown container
                Case(
                    step: "step09", arguments: ["exec", "t-missing", "true"], code: 125,
                    fragment: "step09: no such container: t-missing"),
                // exec into a stopped container
                Case(
                    step: "step09", arguments: ["exec", "{name}", "true"], setup: .exited, code: 125,
                    fragment: "step09: container '{name}' is not running"),
                // exec of a program the container does not have: 127
                Case(
                    step: "step09", arguments: ["exec", "{name}", "no-such-command-xyz"], setup: .running,
                    code: 127,
                    fragment: "step09: exec no-such-command-xyz: No such file or directory (ENOENT)"),
                // exec of a file that is not executable: 126
                Case(
                    step: "step09", arguments: ["exec", "{name}", "/etc/passwd"], setup: .running, code: 126,
                    fragment: "step09: exec /etc/passwd: Permission denied (EACCES)"),
                // exec without a command
                Case(
                    step: "step09", arguments: ["exec", "{name}"], setup: .running, code: 125,
                    fragment: "step09: exec needs a container and a command (try: step09 exec web sh)"),
                // exec -t without a terminal on stdin
                Case(
                    step: "step09", arguments: ["exec", "-t", "{name}", "sh"], setup: .running, code: 125,
                    fragment: "step09: -t needs a terminal on stdin, and stdin is not one"),
                // -e is step10's
                Case(
                    step: "step09", arguments: ["exec", "-e", "A=1", "{name}", "true"], setup: .running,
                    code: 125, fragment: "step09: unknown flag '-e' (see step09 exec --help)"),
                // an unknown subcommand
                Case(
                    step: "step10", arguments: ["bogus"], code: 125,
                    fragment: "step10: unknown command 'bogus' (try: step10 --help)"),
                // -e without a key
                Case(
                    step: "step10", arguments: ["run", "-e", "=x", "busybox", "true"], code: 125,
                    fragment: "step10: invalid environment variable '=x': the name is empty"),
                // -e with a space in the key
                Case(
                    step: "step10", arguments: ["run", "-e", "A B=1", "busybox", "true"], code: 125,
                    fragment: "step10: invalid environment variable 'A B=1': the name contains a space"),
                // exec -e without a key, into a running container: it is not touched
                Case(
                    step: "step10", arguments: ["exec", "-e", "=x", "{name}", "true"], setup: .running,
                    code: 125, fragment: "step10: invalid environment variable '=x': the name is empty"),
                // a memory size with a hexadecimal number
                Case(
                    step: "step10", arguments: ["run", "-m", "0x10m", "busybox", "true"], code: 125,
                    fragment: "step10: invalid memory size '0x10m'"),
                // an absurd CPU range is refused at once, not expanded CPU by CPU
                Case(
                    step: "step10", arguments: ["run", "-cpuset", "0-99999999999", "busybox", "true"],
                    code: 125,
                    fragment: "in '0-99999999999' is not online"),
                // commit of an unknown container
                Case(
                    step: "step10", arguments: ["commit", "t-missing", "img"], code: 125,
                    fragment: "step10: no such container: t-missing"),
                // commit to an image name with a slash
                Case(
                    step: "step10", arguments: ["commit", "{name}", "a/b"], setup: .running, code: 125,
                    fragment:
                        "step10: invalid image name 'a/b' (lowercase letters, digits, '_', '.', '-'; no '/')"),
                // commit over an existing image without -f
                Case(
                    step: "step10", arguments: ["commit", "{name}", "busybox"], setup: .running, code: 125,
                    fragment: "step10: image 'busybox' already exists (use -f to replace it)"),
                // commit -f over the image a running container is using
                Case(
                    step: "step10", arguments: ["commit", "-f", "{name}", "busybox"], setup: .running,
                    code: 125,
                    fragment:
                        "step10: image 'busybox' is in use by a running container (stop it before replacing it)"
                ),
                // a command the image does not have: 127
                Case(
                    step: "step10", arguments: ["run", "busybox", "no-such-command-xyz"], code: 127,
                    fragment: "step10: exec no-such-command-xyz: No such file or directory (ENOENT)"),
                // a command that is not executable: 126
                Case(
                    step: "step10", arguments: ["run", "busybox", "/etc/passwd"], code: 126,
                    fragment: "step10: exec /etc/passwd: Permission denied (EACCES)"),
                // a relative MYDOCKER_ROOT, for a command that only reads
                Case(
                    step: "step10", arguments: ["ps"], setup: .relativeRoot, code: 125,
                    fragment: "step10: MYDOCKER_ROOT must be an absolute path, got '{root}'"),
                // MYDOCKER_ROOT is a file: the message names the path
                Case(
                    step: "step10", arguments: ["run", "-d", "busybox", "true"], setup: .fileRoot, code: 125,
                    fragment: "step10: MYDOCKER_ROOT '{root}' is not a directory"),
                // MYDOCKER_ROOT does not exist: nothing is created there
                Case(
                    step: "step10", arguments: ["run", "busybox", "true"], setup: .missingRoot, code: 125,
                    fragment: "step10: rootfs image 'busybox' not found under {root}/images"),
                // an unwritable MYDOCKER_ROOT
                Case(
                    step: "step10", arguments: ["run", "-d", "busybox", "true"], setup: .readOnlyRoot,
                    code: 125,
                    fragment: "Read-only file system (EROFS)"),
                // not root
                Case(
                    step: "step10", arguments: ["rm", "-f", "t-missing"], setup: .notRoot, code: 125,
                    fragment: "step10: must be run as root"),
            ])
        func badInput(_ bad: Case) throws {
            let stepNumber = Int(bad.step.dropFirst(4)) ?? 0
            try withSandbox(
                bad.step, image: stepNumber >= 5, runtimeRemove: stepNumber >= 8 ? ["rm", "-f"] : nil
            ) { box in
                var root = box.root
                var name = ""
                switch bad.setup {
                case .running, .exited:
                    name = box.newName()
                    let command = bad.setup == .running ? ["sleep", "300"] : ["true"]
                    let started = box.run(["run", "-d", "--name", name, "busybox"] + command)
                    try #require(started.exitCode == 0, "setup failed\n\(started)")
                    let wanted = bad.setup == .running ? "running" : "exited"
                    try #require(
                        waitUntil { Self.status(box, name) == wanted },
                        "setup: \(name) is \(String(describing: Self.status(box, name))), not \(wanted)")
                case .relativeRoot:
                    root = "mydocker-relative-root-\(Harness.random(in: 1000...9999))"
                case .fileRoot:
                    root = box.scratch + "/root-file"
                    try "not a directory\n".write(toFile: root, atomically: true, encoding: .utf8)
                case .missingRoot:
                    root = box.scratch + "/no-such-root"
                case .readOnlyRoot:
                    // A read-only bind of the root onto itself: even root cannot write through it.
                    try #require(mount(box.root, box.root, nil, UInt(MS_BIND), nil) == 0, "bind \(box.root)")
                    guard mount(nil, box.root, nil, UInt(MS_BIND | MS_REMOUNT | MS_RDONLY), nil) == 0 else {
                        umount2(box.root, Int32(MNT_DETACH))
                        throw HarnessError("remount \(box.root) read-only failed: errno \(errno)")
                    }
                case .none, .notRoot:
                    break
                }
                defer { if bad.setup == .readOnlyRoot { umount2(box.root, Int32(MNT_DETACH)) } }
                func fill(_ text: String) -> String {
                    text.replacingOccurrences(of: "{name}", with: name)
                        .replacingOccurrences(of: "{root}", with: root)
                        .replacingOccurrences(of: "{scratch}", with: box.scratch)
                }
                let arguments = bad.arguments.map(fill)
                let expected = fill(bad.fragment)
                let before = Self.stateEntries(box.root)

                // Every case takes milliseconds; the deadline only catches a runtime that hangs.
                let r: RunResult
                if bad.setup == .notRoot {
                    r = runProcess(
                        [
                            "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            Harness.binary(bad.step),
                        ] + arguments, environment: ["MYDOCKER_ROOT": root], timeout: 15)
                } else {
                    r = box.run(arguments, environment: ["MYDOCKER_ROOT": root], timeout: 15)
                }

                #expect(!r.timedOut, "the runtime hung and was killed after 15 s\n\(r)")
                #expect(r.exitCode == bad.code, "Expected exit \(bad.code)\n\(r)")
                // Counted in bytes: Swift's split on "\n" would keep a "\r\n" inside one line.
                #expect(
                    r.stderr.utf8.filter { $0 == 0x0A }.count == 1 && r.stderr.hasSuffix("\n"),
                    "Expected exactly one line on stderr\n\(r)")
                #expect(r.stderr.contains(expected), "Expected \(expected.debugDescription) on stderr\n\(r)")
                #expect(
                    Self.stateEntries(box.root) == before,
                    "half-created state under \(box.root): before \(before), after \(Self.stateEntries(box.root))"
                )
                switch bad.setup {
                case .running:
                    #expect(
                        Self.status(box, name) == "running",
                        "\(name) was running before the mistake and is \(String(describing: Self.status(box, name))) now"
                    )
                case .relativeRoot:
                    #expect(
                        !FileManager.default.fileExists(atPath: root),
                        "the relative root \(root) was created in \(FileManager.default.currentDirectoryPath)"
                    )
                case .missingRoot:
                    #expect(
                        !FileManager.default.fileExists(atPath: root), "the missing root \(root) was created")
                default:
                    break
                }
            }
        }

        /// What a command may leave under MYDOCKER_ROOT: entries of containers/ and overlay/ (the
        /// workspace lock of steps 05-07 aside) and hidden entries of images/ (a partial unpack).
        static func stateEntries(_ root: String) -> [String] {
            let fm = FileManager.default
            var entries: [String] = []
            for directory in ["containers", "overlay"] {
                for name in (try? fm.contentsOfDirectory(atPath: root + "/" + directory)) ?? []
                where !name.hasSuffix(".lock") {
                    entries.append(directory + "/" + name)
                }
            }
            for name in (try? fm.contentsOfDirectory(atPath: root + "/images")) ?? []
            where name.hasPrefix(".") && !name.hasSuffix(".lock") {
                entries.append("images/" + name)
            }
            return entries.sorted()
        }

        /// The STATUS column of `ps -a` for `name`, or nil if it is not listed.
        static func status(_ box: Sandbox, _ name: String) -> String? {
            let r = box.run(["ps", "-a"])
            for row in r.stdout.split(separator: "\n").dropFirst() {
                let cells = row.split(separator: " ")
                if cells.count >= 3 && cells[1] == name { return String(cells[cells.count - 2]) }
            }
            return nil
        }
    }
}
