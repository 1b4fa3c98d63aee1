#define _GNU_SOURCE
#include "CContainerSupport.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

pid_t cs_clone(unsigned long flags) {
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

int cs_unshare(int flags) { return unshare(flags); }

int cs_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cs_setns(int fd, int nstype) { return setns(fd, nstype); }

int cs_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int cs_filesystem_magic(const char *path, unsigned long *magic) {
    struct statfs buf;
    if (statfs(path, &buf) != 0) return -1;
    *magic = (unsigned long)buf.f_type;
    return 0;
}

unsigned long cs_makedev(unsigned int major, unsigned int minor) {
    return (unsigned long)makedev(major, minor);
}

int cs_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }

int cs_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int cs_mark_cloexec_from(unsigned int first) {
    return (int)syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC);
}

int cs_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int cs_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
