// The exec constructor (step 09): joins a running container's namespaces before the Swift runtime
// starts, then runs a command in them.
//
// Why a constructor: setns(2) into a mount namespace fails with EINVAL in a process that has more
// than one thread, and a Swift program cannot promise to be single-threaded once its runtime is up.
// A function marked __attribute__((constructor)) runs before main, before any Swift code, while the
// process certainly has one thread. The same trick is how runc's nsexec joins namespaces before the
// Go runtime starts, and how the mydocker tutorial did it with cgo.
//
// Protocol (nsenter.h): `exec` (Swift) opens a pidfd of the container's PID 1, checks that it is
// the container's, joins the container's cgroup, writes the command's environment into a memfd,
// puts the two at descriptors 3 and 4 and re-executes the binary as `STEP __nsenter tty|notty CMD
// [ARG...]` with an empty environment. This constructor sees the marker, closes every other
// descriptor, reads the environment, joins ipc, uts, net, pid and mnt through the pidfd, forks (a
// PID namespace applies to children only), execs CMD in the child with that environment, and
// passes the child's exit status through as its own. Without the marker it returns at once and
// the binary runs as usual.
#define _GNU_SOURCE
#include "nsenter.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *step_name = "mydocker";

// Rule 2's one line, `step09: STAGE: strerror (ENAME)`, then exit: from the constructor there is
// no Swift error to throw.
static void fail(int code, const char *stage, const char *operand) {
    int saved = errno;
    const char *name = strerrorname_np(saved);
    fprintf(stderr, "%s: %s%s: %s (%s)\n", step_name, stage, operand, strerror(saved), name ? name : "?");
    _exit(code);
}

// The command's environment from the memfd, as the NULL-terminated array execve wants. It is only
// data until the final execve: the host's dynamic loader, which read this process's (empty)
// environment, never saw it.
static char **read_environment(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) fail(125, "read environment fd ", "4");
    size_t size = (size_t)st.st_size;
    char *bytes = malloc(size + 1);
    if (bytes == NULL) fail(125, "read environment fd ", "4");
    for (size_t done = 0; done < size;) {
        ssize_t n = pread(fd, bytes + done, size - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(125, "read environment fd ", "4");
        done += (size_t)n;
    }
    bytes[size] = '\0';  // a last entry without its NUL still ends
    size_t count = 0;
    for (size_t i = 0; i < size; i += strlen(bytes + i) + 1) count++;
    char **envp = calloc(count + 1, sizeof(char *));
    if (envp == NULL) fail(125, "read environment fd ", "4");
    count = 0;
    for (size_t i = 0; i < size; i += strlen(bytes + i) + 1) envp[count++] = bytes + i;
    return envp;
}

// The namespaces to join, in the order we join them, one setns each so that an error names the
// one that failed. The pidfd means there are no paths to look up: the kernel finds the
// namespaces through the process we hold, so the race of opening /proc/PID/ns/* by number is
// gone. mnt still comes last: joining it also moves our root and working directory into the
// container, and from then on nothing on the host is reachable by path. pid comes before mnt but
// only takes effect for the child we fork afterwards.
static const struct {
    const char *name;
    int type;
} namespaces[] = {
    {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
};
enum { namespace_count = sizeof(namespaces) / sizeof(namespaces[0]) };

static void run_in_container(int tty, char **command) {
    char **envp = read_environment(NSENTER_ENVFD);
    close(NSENTER_ENVFD);
    for (int i = 0; i < namespace_count; i++) {
        // setns accepts a pidfd since Linux 5.8. If PID 1 has died since `exec` checked it, this
        // fails with ESRCH, even when its number already belongs to another process.
        if (setns(NSENTER_PIDFD, namespaces[i].type) != 0) fail(125, "setns ", namespaces[i].name);
    }
    close(NSENTER_PIDFD);
    // Joining the mount namespace has also moved our root and working directory to the root of
    // the container's filesystem (setns(2)), the working directory its init started in.

    pid_t terminal_owner = tty ? tcgetpgrp(STDIN_FILENO) : -1;
    pid_t child = fork();
    if (child < 0) fail(125, "fork", "");
    if (child == 0) {
        // Born into the container's PID namespace. With -t, take the terminal's foreground, as
        // the container's init did in `run -t` (see takeTerminal in Init.swift).
        if (tty) {
            setpgid(0, 0);
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(STDIN_FILENO, getpid());
            signal(SIGTTOU, SIG_DFL);
        }
        // The command's environment, only now: execvp looks CMD up in this PATH, the container's.
        environ = envp;
        execvp(command[0], command);
        fail(errno == ENOENT ? 127 : 126, "exec ", command[0]);
    }
    // The parent stays outside the PID namespace, waits, and hands on the exit status. Keyboard
    // signals are the child's business (as in system(3)).
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (terminal_owner > 0) {
        signal(SIGTTOU, SIG_IGN);
        tcsetpgrp(STDIN_FILENO, terminal_owner);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

__attribute__((constructor)) static void nsenter_constructor(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], NSENTER_MARKER) != 0) return;  // not an exec: carry on into main
    const char *slash = strrchr(argv[0], '/');
    step_name = slash ? slash + 1 : argv[0];
    // Nothing but 0, 1, 2 and our two may go on into the container, whatever the caller left open
    // (`9</etc` in a shell): a host directory held open is a way out of the container's root
    // (runc's CVE-2024-21626). The two go as soon as they have been used.
    if (syscall(SYS_close_range, NSENTER_ENVFD + 1, ~0U, 0) != 0) fail(125, "close_range", "");
    if (argc < 4 || (strcmp(argv[2], NSENTER_TTY) != 0 && strcmp(argv[2], NSENTER_NO_TTY) != 0)) {
        errno = EINVAL;
        fail(125, NSENTER_MARKER, ": expected tty or notty, then a command");
    }
    run_in_container(strcmp(argv[2], NSENTER_TTY) == 0, argv + 3);
}
