// The exec constructor (step 09): joins a running container's namespaces before the Swift runtime
// starts, then runs a command in them.
//
// Why a constructor: setns(2) into a mount namespace fails with EINVAL in a process that has more
// than one thread, and a Swift program cannot promise to be single-threaded once its runtime is up.
// A function marked __attribute__((constructor)) runs before main, before any Swift code, while the
// process certainly has one thread. The same trick is how runc's nsexec joins namespaces before the
// Go runtime starts, and how the mydocker tutorial did it with cgo.
//
// Protocol: `exec` (Swift) joins the container's cgroup, sets CS_EXEC_PID_ENV to the container's
// PID and re-executes the binary as `STEP CMD [ARG...]`. This constructor sees the variable,
// removes it (the command must not inherit it), joins ipc, uts, net, pid and mnt, forks (a PID
// namespace applies to children only), execs argv[1..] in the child unchanged, and passes the
// child's exit status through as its own. Without the variable it returns at once and the binary
// runs as usual.
#define _GNU_SOURCE
#include "CContainerSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

// The namespaces to join, in the order we join them. mnt comes last: once we are in the
// container's mount namespace, the host's /proc/PID paths are gone, which is why every file is
// opened before the first setns (runc's nsexec does the same). pid comes before mnt but only
// takes effect for the child we fork afterwards.
static const struct {
    const char *name;
    int type;
} namespaces[] = {
    {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
};
enum { namespace_count = sizeof(namespaces) / sizeof(namespaces[0]) };

static void run_in_container(const char *pid, int argc, char **argv) {
    char path[PATH_MAX];
    int fds[namespace_count];
    for (int i = 0; i < namespace_count; i++) {
        snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, namespaces[i].name);
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) fail(125, "open ", path);
    }
    for (int i = 0; i < namespace_count; i++) {
        snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, namespaces[i].name);
        if (setns(fds[i], namespaces[i].type) != 0) fail(125, "setns ", path);
        close(fds[i]);
    }
    // Joining the mount namespace has also moved our root and working directory to the root of
    // the container's filesystem (setns(2)), the working directory its init started in.
    if (argc < 2) {
        errno = EINVAL;
        fail(125, "exec", ": no command");
    }

    int tty = getenv(CS_EXEC_TTY_ENV) != NULL;
    unsetenv(CS_EXEC_TTY_ENV);
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
        execvp(argv[1], argv + 1);
        fail(errno == ENOENT ? 127 : 126, "exec ", argv[1]);
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

__attribute__((constructor)) static void cs_exec_constructor(int argc, char **argv, char **envp) {
    (void)envp;
    const char *pid = getenv(CS_EXEC_PID_ENV);
    if (pid == NULL || *pid == '\0') return;  // not an exec: carry on into main
    if (argc > 0) {
        const char *slash = strrchr(argv[0], '/');
        step_name = slash ? slash + 1 : argv[0];
    }
    char pid_copy[32];
    snprintf(pid_copy, sizeof(pid_copy), "%s", pid);
    unsetenv(CS_EXEC_PID_ENV);
    run_in_container(pid_copy, argc, argv);
}
