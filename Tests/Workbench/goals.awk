# Prints the goals of one check (the lines events.awk writes) for a learner: met, not met yet
# (with the first thing the suite expected and what the step did), or not reached.
# -v package=DIR/ shortens the paths of binaries to DIR's own; -v start=K numbers from K+1.
BEGIN { if (detail_lines == "") detail_lines = 12; n = start + 0 }

# JSON string escapes, left to right (so an escaped backslash before an n stays two characters).
function unescape(s,    out, i, c, d) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c != "\\") { out = out c; continue }
        d = substr(s, ++i, 1)
        if (d == "n") out = out "\n"
        else if (d == "t") out = out "\t"
        else if (d == "u") { out = out "\\u"; }
        else out = out d
    }
    return out
}
{
    n++
    if ($2 == "passed") { met++; printf "  ✔ %2d. %s\n", n, $4; next }
    if ($2 == "skipped") { printf "  - %2d. %s (skipped: %s)\n", n, $4, unescape($5); next }
    if ($2 == "notreached") { printf "  ○ %2d. %s (not reached: the run stopped before it)\n", n, $4; next }
    printf "  ✘ %2d. %s\n", n, $4
    if (first == "") first = n
    text = unescape($5)
    if (package != "") gsub(package, "", text)
    gsub(/x86_64-unknown-linux-gnu\/|aarch64-unknown-linux-gnu\//, "", text)
    # Swift Testing says where and what: drop the "Test \"...\" recorded an issue at " prefix.
    sub(/^Test .* recorded an issue (with [0-9]+ arguments? .* )?at /, "", text)
    lines = split(text, part, "\n")
    for (i = 1; i <= lines && i <= detail_lines; i++) printf "        %s\n", part[i]
    if (lines > detail_lines) printf "        ...\n"
}
END {
    printf "\n%d of %d goals met.", met, n
    if (first != "") printf " Next: goal %d.", first
    printf "\n"
}
