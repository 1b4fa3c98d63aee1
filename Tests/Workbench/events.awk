# Reads a Swift Testing event stream (swift test --event-stream-output-path F
# --event-stream-version 0: one JSON object a line) and prints one line per test function, in the
# order of the source (the chapter's order of goals), tab-separated:
#   LINE  STATUS  FUNCTION  DISPLAY-NAME  FIRST-ISSUE (JSON-escaped, so it holds no tab or newline)
# STATUS is passed, failed, skipped (the issue field then holds the reason) or notreached (never
# started, or started and never ended: the run stopped before it).
# Plain awk (mawk is enough): no jq, no python.

# The JSON string value of "key" in s, still escaped, or "" if absent.
function jstr(s, key,    i, rest, out, c) {
    i = index(s, "\"" key "\":\"")
    if (i == 0) return ""
    rest = substr(s, i + length(key) + 4)
    out = ""
    while (length(rest) > 0) {
        c = substr(rest, 1, 1)
        if (c == "\\") { out = out substr(rest, 1, 2); rest = substr(rest, 3); continue }
        if (c == "\"") break
        out = out c
        rest = substr(rest, 2)
    }
    return out
}

# Where the last "key":"..." in s starts (a parameterized function's record lists its cases
# first, each with a displayName and id of its own; the function's come after them).
function lastfrom(s, key,    i, at, rest) {
    at = 0
    rest = s
    while ((i = index(rest, "\"" key "\":\"")) > 0) { at += i; rest = substr(rest, i + 1) }
    return at == 0 ? s : substr(s, at)
}

# The first "line": N after "sourceLocation" in s.
function jline(s,    i, rest) {
    i = index(s, "\"sourceLocation\"")
    rest = substr(s, i)
    i = index(rest, "\"line\":")
    rest = substr(rest, i + 7)
    return rest + 0
}

# The texts of a record's "messages", joined by an escaped newline.
function texts(s,    out, i, rest, t) {
    out = ""
    rest = substr(s, index(s, "\"messages\":"))
    while ((i = index(rest, "\"text\":\"")) > 0) {
        t = jstr(substr(rest, i), "text")
        out = out (out == "" ? "" : "\\n") t
        rest = substr(rest, i + 8 + length(t))
    }
    return out
}

function unescape(s) {
    gsub(/\\\//, "/", s)
    gsub(/\\"/, "\"", s)
    return s
}

/"kind":"test"/ && /"kind":"function"/ {
    own = lastfrom($0, "displayName")
    id = jstr(lastfrom($0, "id"), "id")
    name = jstr(own, "name")
    display = jstr(own, "displayName")
    if (display == "") display = name
    sub(/\(.*/, "", name)
    order[++count] = id
    lineOf[id] = jline($0)
    nameOf[id] = name
    displayOf[id] = unescape(display)
    next
}
/"kind":"testStarted"/ { started[jstr($0, "testID")] = 1; next }
/"kind":"issueRecorded"/ {
    id = jstr($0, "testID")
    if ($0 ~ /"isKnown":true/) next
    if (!(id in issue)) issue[id] = texts($0)
    next
}
/"kind":"testSkipped"/ {
    id = jstr($0, "testID")
    ended[id] = "skipped"
    issue[id] = texts($0)
    next
}
/"kind":"testEnded"/ {
    id = jstr($0, "testID")
    ended[id] = (id in issue) ? "failed" : "passed"
    next
}

END {
    # Source order: a simple insertion sort on the line (a suite has a few dozen tests).
    for (i = 2; i <= count; i++) {
        v = order[i]
        for (j = i - 1; j >= 1 && lineOf[order[j]] > lineOf[v]; j--) order[j + 1] = order[j]
        order[j + 1] = v
    }
    for (i = 1; i <= count; i++) {
        id = order[i]
        status = (id in ended) ? ended[id] : "notreached"
        printf "%d\t%s\t%s\t%s\t%s\n", lineOf[id], status, nameOf[id], displayOf[id], issue[id]
    }
}
