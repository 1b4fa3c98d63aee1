// The few things a Swift step cannot reach on its own. Swift imports glibc through a module map that
// is compiled without _GNU_SOURCE, so Linux-only calls (unshare, setns, pipe2) and constants
// (CLONE_NEW*) are invisible to it, and so is everything in headers outside that module (statfs in
// <sys/vfs.h>); variadic functions (syscall, prctl) cannot be imported at all; and
// macros such as makedev are not functions. Everything here returns what the kernel returns (-1 with
// errno set) and never prints.
#ifndef CCONTAINERSUPPORT_H
#define CCONTAINERSUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// The rtnetlink ABI (step 11: Netlink.swift builds the messages `ip` sends): message types, flags
// and attribute numbers. Swift's Glibc module map has no <linux/*> headers; these bring the
// kernel's own definitions instead of copied numbers.
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

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

// MARK: hardening (step 12), in hardening.c

// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap), CAP_LAST_CAP of
// our headers when it cannot be read. Here because the privilege drop below needs it from C.
int cs_last_capability(void);

// Flags for cs_apply_privileges.
#define CS_PRIVILEGES_NO_NEW_PRIVS 1
#define CS_PRIVILEGES_SECCOMP 2

// The whole privilege drop a container's process does last before it execs its command, in the
// order the kernel needs (the order is explained in hardening.c): bounding set to `capabilities`,
// supplementary groups, gid, uid, ambient set cleared, no_new_privs (with the flag), the seccomp
// filter (with the flag), and the final permitted/effective sets (`capabilities` for uid 0, none
// for anyone else; inheritable always empty). In C because prctl and the raw capset are variadic
// or have no glibc wrapper, and because the exec constructor must call it before Swift starts.
// On failure returns -1 with errno set and points *stage at the step that failed.
int cs_apply_privileges(uint64_t capabilities, uid_t uid, gid_t gid, const gid_t *groups,
                        size_t group_count, int flags, const char **stage);

// The seccomp filter alone: refuses (EPERM) what docker's default profile refuses, unless the
// capability docker ties the call to is in `capabilities`; checks the architecture and refuses
// x32. In C because struct sock_filter is built with the BPF_STMT/BPF_JUMP macros and seccomp(2)
// has no glibc wrapper.
int cs_install_seccomp(uint64_t capabilities);

// What `exec` must give its command, read from a running container's PID 1 (/proc/PID/status:
// CapBnd, Uid, Gid, Groups, NoNewPrivs, Seccomp), as step 10 reads its environment. A struct with
// a fixed array so the exec constructor needs no allocation.
#define CS_MAX_GROUPS 64
struct cs_privileges {
    uint64_t capabilities;
    uid_t uid;
    gid_t gid;
    gid_t groups[CS_MAX_GROUPS];
    size_t group_count;
    int flags;
};
int cs_read_privileges(pid_t pid, struct cs_privileges *privileges);
// cs_apply_privileges with what cs_read_privileges found.
int cs_apply_read_privileges(const struct cs_privileges *privileges, const char **stage);

// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program that allows mknod of any node but read/write only
// of the default devices (null zero full random urandom tty console ptmx pts/*), and attaches it
// to the cgroup v2 directory `cgroup_fd` (BPF_CGROUP_DEVICE): cgroup v2 has no devices.allow file.
// In C because bpf(2) has no glibc wrapper and its instructions are built from <linux/bpf.h>.
int cs_attach_device_program(int cgroup_fd);

#endif
