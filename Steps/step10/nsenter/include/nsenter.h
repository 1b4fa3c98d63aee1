// The protocol between `exec` (Exec.swift) and the constructor that joins a container (nsenter.c).
// Everything the constructor needs travels in what only the runtime sets up when it re-executes
// itself: argv[1] and argv[2], and two descriptors at fixed numbers. Nothing travels in the
// environment, which the user (`-e`), the caller's shell and root inside the container (through
// /proc/PID/environ) can all write. The constructor itself has no declaration: nothing calls it,
// the loader runs it before main.
#ifndef NSENTER_H
#define NSENTER_H

// argv[1] of the re-exec that wakes the constructor: `STEP __nsenter tty|notty CMD [ARG...]`.
#define NSENTER_MARKER "__nsenter"
// argv[2]: with "tty" (`exec -t`) the command takes the terminal's foreground.
#define NSENTER_TTY "tty"
#define NSENTER_NO_TTY "notty"

// A pidfd of the container's PID 1, opened (and checked) by `exec` before the re-exec.
#define NSENTER_PIDFD 3
// A memfd holding the command's environment: KEY=VALUE entries, each ended by a NUL.
#define NSENTER_ENVFD 4

#endif
