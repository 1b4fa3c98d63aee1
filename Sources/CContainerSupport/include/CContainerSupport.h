// The few things a Swift step cannot reach on its own. Swift imports glibc through a module map that
// is compiled without _GNU_SOURCE, so Linux-only calls (unshare, setns, pipe2) and constants
// (CLONE_NEW*) are invisible to it, and so is everything in headers outside that module (statfs in
// <sys/vfs.h>); variadic functions (syscall, prctl) cannot be imported at all; and
// macros such as makedev are not functions. Everything here returns what the kernel returns (-1 with
// errno set) and never prints.
#ifndef CCONTAINERSUPPORT_H
#define CCONTAINERSUPPORT_H

#include <sys/types.h>

// Namespace flags, from <linux/sched.h>.
#ifndef CLONE_NEWNS
#define CLONE_NEWNS 0x00020000
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWUTS
#define CLONE_NEWUTS 0x04000000
#endif
#ifndef CLONE_NEWIPC
#define CLONE_NEWIPC 0x08000000
#endif
#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER 0x10000000
#endif
#ifndef CLONE_NEWPID
#define CLONE_NEWPID 0x20000000
#endif
#ifndef CLONE_NEWNET
#define CLONE_NEWNET 0x40000000
#endif

// Filesystem magic numbers, from <linux/magic.h>.
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

// clone(2) without a new stack, so it returns twice like fork(2): 0 in the child, the child's PID in
// the parent. In C because glibc's clone() wants a function and a stack, and the raw syscall() is
// variadic, which Swift cannot call. SIGCHLD is added so the parent can waitpid() for the child.
pid_t cs_clone(unsigned long flags);

// unshare(2): declared by glibc only under _GNU_SOURCE.
int cs_unshare(int flags);

// pipe2(2) with O_CLOEXEC: declared by glibc only under _GNU_SOURCE. Atomic close-on-exec, so no
// other exec can inherit the pipe between pipe() and fcntl().
int cs_pipe_cloexec(int fds[2]);

// setns(2): declared by glibc only under _GNU_SOURCE.
int cs_setns(int fd, int nstype);

// pivot_root(2): glibc has no wrapper at all.
int cs_pivot_root(const char *new_root, const char *put_old);

// statfs(2)'s f_type (the filesystem's magic number): struct statfs lives in <sys/vfs.h>, outside
// Swift's Glibc module.
int cs_filesystem_magic(const char *path, unsigned long *magic);

// makedev(3) is a macro.
unsigned long cs_makedev(unsigned int major, unsigned int minor);

// prctl(PR_SET_PDEATHSIG, signal): prctl is variadic. The caller gets `signal` when its parent
// dies; it survives execve.
int cs_set_parent_death_signal(int signal);

// prctl(PR_SET_CHILD_SUBREAPER): prctl is variadic. Orphaned descendants are re-parented to the
// caller instead of to the host's PID 1.
int cs_set_child_subreaper(void);

// close_range(2) with CLOSE_RANGE_CLOEXEC: every descriptor from `first` up is marked close-on-exec
// in one call. Declared by glibc only under _GNU_SOURCE (kernel 5.11+). A runtime cannot know which
// descriptors its caller left open (`9</etc` in a shell), and each one that survives execve reaches
// the container (runc's CVE-2024-21626).
int cs_mark_cloexec_from(unsigned int first);

// pidfd_open(2): a descriptor that refers to one process for as long as it is held, so a PID that
// is reused meanwhile can never be mistaken for it. No glibc wrapper before 2.36 (kernel 5.3+).
int cs_pidfd_open(pid_t pid);

// memfd_create(2) with MFD_CLOEXEC: an anonymous file, for handing a block of bytes to a process we
// exec without a path anyone else can open. Declared by glibc only under _GNU_SOURCE.
int cs_memfd_create(const char *name);

#endif
