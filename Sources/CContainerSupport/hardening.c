// Hardening (step 12): the last things a container's process does before it becomes the user's
// command (drop capabilities, change user, install the seccomp filter), and the device program that
// cgroup v2 needs instead of v1's devices.allow files. Shared by `init` (run) and the exec
// constructor, so that both give their command exactly the same privileges in the same order.
#define _GNU_SOURCE
#include "CContainerSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// From <linux/prctl.h> (ambient capabilities: kernel 4.3).
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#endif
#ifndef PR_CAP_AMBIENT_CLEAR_ALL
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
// From <asm/unistd_x32.h>: an x32 system call is an x86_64 entry with this bit set.
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

#if defined(__x86_64__)
#define CS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the seccomp filter knows the system call numbers of x86_64 and aarch64 only"
#endif

int cs_last_capability(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return CAP_LAST_CAP;
    char text[16] = {0};
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    return n > 0 ? atoi(text) : CAP_LAST_CAP;
}

static int has(uint64_t capabilities, int capability) { return (capabilities >> capability) & 1; }

// MARK: the seccomp filter

// One refused system call: refused with `error` unless the container holds one of `unless` (a
// capability mask, 0: refused whatever it holds). docker's default profile ties the same calls
// to the same capabilities (moby/moby:profiles/seccomp/default.json), so `--cap-add SYS_ADMIN`
// opens mount and unshare again, as it does in docker.
struct refusal {
    long nr;
    uint64_t unless;
    int error;
};

#define CAP(name) (1ULL << CAP_##name)

static const struct refusal refusals[] = {
    // The kernel's keyring is not namespaced: keys of the host and of other containers.
    {SYS_keyctl, 0, EPERM},
    {SYS_add_key, 0, EPERM},
    {SYS_request_key, 0, EPERM},
    // Replacing the running kernel, and kernel modules.
    {SYS_kexec_load, 0, EPERM},
    {SYS_kexec_file_load, 0, EPERM},
    {SYS_init_module, CAP(SYS_MODULE), EPERM},
    {SYS_finit_module, CAP(SYS_MODULE), EPERM},
    {SYS_delete_module, CAP(SYS_MODULE), EPERM},
    // open_by_handle_at opens any file of a filesystem by its handle, outside the container's
    // root: the "shocker" escape of 2014.
    {SYS_open_by_handle_at, CAP(DAC_READ_SEARCH), EPERM},
    // Tracing and programs in the kernel: BPF, perf, userfaultfd (a tool for kernel exploits).
    {SYS_bpf, CAP(SYS_ADMIN) | CAP(BPF), EPERM},
    {SYS_perf_event_open, CAP(SYS_ADMIN) | CAP(PERFMON), EPERM},
    {SYS_userfaultfd, 0, EPERM},
    {SYS_lookup_dcookie, CAP(SYS_ADMIN), EPERM},
    {SYS_fanotify_init, CAP(SYS_ADMIN), EPERM},
    // The machine itself: reboot, swap, process accounting, quotas, I/O ports, the clock.
    {SYS_reboot, CAP(SYS_BOOT), EPERM},
    {SYS_swapon, 0, EPERM},
    {SYS_swapoff, 0, EPERM},
    {SYS_acct, CAP(SYS_PACCT), EPERM},
    {SYS_quotactl, CAP(SYS_ADMIN), EPERM},
#ifdef SYS_iopl
    {SYS_iopl, CAP(SYS_RAWIO), EPERM},
    {SYS_ioperm, CAP(SYS_RAWIO), EPERM},
#endif
    {SYS_settimeofday, CAP(SYS_TIME), EPERM},
    {SYS_clock_settime, CAP(SYS_TIME), EPERM},
    {SYS_syslog, CAP(SYS_ADMIN) | CAP(SYSLOG), EPERM},
    {SYS_vhangup, CAP(SYS_TTY_CONFIG), EPERM},
    // Mounts and namespaces: the masks are mounts, and a new user namespace hands out a full set
    // of capabilities (inside it) to anyone, which is how most container escapes begin.
    {SYS_mount, CAP(SYS_ADMIN), EPERM},
    {SYS_umount2, CAP(SYS_ADMIN), EPERM},
    {SYS_pivot_root, 0, EPERM},
    {SYS_fsopen, CAP(SYS_ADMIN), EPERM},
    {SYS_fsconfig, CAP(SYS_ADMIN), EPERM},
    {SYS_fsmount, CAP(SYS_ADMIN), EPERM},
    {SYS_fspick, CAP(SYS_ADMIN), EPERM},
    {SYS_move_mount, CAP(SYS_ADMIN), EPERM},
    {SYS_open_tree, CAP(SYS_ADMIN), EPERM},
    {SYS_unshare, CAP(SYS_ADMIN), EPERM},
    {SYS_setns, CAP(SYS_ADMIN), EPERM},
    {SYS_sethostname, CAP(SYS_ADMIN), EPERM},
    {SYS_setdomainname, CAP(SYS_ADMIN), EPERM},
    // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes the C library
    // fall back to clone, whose flags are checked below (docker does the same).
    {SYS_clone3, CAP(SYS_ADMIN), ENOSYS},
    // Other processes' memory and file descriptors.
    {SYS_kcmp, CAP(SYS_PTRACE), EPERM},
    {SYS_pidfd_getfd, CAP(SYS_PTRACE), EPERM},
    {SYS_process_madvise, CAP(SYS_PTRACE), EPERM},
    // NUMA memory policies of the whole machine.
    {SYS_mbind, CAP(SYS_NICE), EPERM},
    {SYS_set_mempolicy, CAP(SYS_NICE), EPERM},
};
enum { refusal_count = sizeof(refusals) / sizeof(refusals[0]) };

// The CLONE_NEW* flags docker's profile refuses in clone's first argument (0x7e020000).
#define NAMESPACE_FLAGS                                                                                    \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP(code, k, jt, jf))
#define LOAD(field) STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define RETURN(action) STMT(BPF_RET | BPF_K, (action))
#define REFUSE(error) RETURN(SECCOMP_RET_ERRNO | ((error) & SECCOMP_RET_DATA))

int cs_install_seccomp(uint64_t capabilities) {
    struct sock_filter program[8 + 2 * refusal_count + 8];
    unsigned n = 0;
    // The number in seccomp_data means nothing without its architecture: a 64-bit process may
    // still enter the kernel through the 32-bit (int 0x80) entry, where 3 is read, not close.
    // A call from any other architecture kills the process before its number is looked at (an
    // error would leave a 32-bit program retrying a refused exit forever); docker instead keeps a
    // table per architecture.
    program[n++] = LOAD(arch);
    program[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, CS_AUDIT_ARCH, 1, 0);
    program[n++] = RETURN(SECCOMP_RET_KILL_PROCESS);
    program[n++] = LOAD(nr);
#if defined(__x86_64__)
    // x32 has the same architecture value as x86_64 and its own numbers, each with
    // __X32_SYSCALL_BIT set: refused, or `keyctl | 0x40000000` would walk past the list.
    program[n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1);
    program[n++] = REFUSE(EPERM);
#endif
    for (int i = 0; i < refusal_count; i++) {
        if (refusals[i].unless & capabilities) continue;
        program[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)refusals[i].nr, 0, 1);
        program[n++] = REFUSE(refusals[i].error);
    }
    if (!has(capabilities, CAP_SYS_ADMIN)) {
        // clone is allowed, clone into new namespaces is not: the flags are its first argument,
        // and all of them sit in its low 32 bits.
        program[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
        program[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
        program[n++] = JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1);
        program[n++] = REFUSE(EPERM);
    }
    program[n++] = RETURN(SECCOMP_RET_ALLOW);
    struct sock_fprog fprog = {.len = (unsigned short)n, .filter = program};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog);
}

// MARK: dropping privileges

static int set_capabilities(uint64_t effective, uint64_t permitted) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2] = {
        {.effective = (uint32_t)effective, .permitted = (uint32_t)permitted, .inheritable = 0},
        {.effective = (uint32_t)(effective >> 32), .permitted = (uint32_t)(permitted >> 32), .inheritable = 0},
    };
    return (int)syscall(SYS_capset, &header, data);
}

static uint64_t permitted_now(void) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2] = {{0}, {0}};
    if (syscall(SYS_capget, &header, data) != 0) return 0;
    return (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
}

#define FAIL(what)                                                                                         \
    do {                                                                                                   \
        if (stage) *stage = (what);                                                                        \
        return -1;                                                                                         \
    } while (0)

int cs_apply_privileges(uint64_t capabilities, uid_t uid, gid_t gid, const gid_t *groups, size_t group_count,
                        int flags, const char **stage) {
    int last = cs_last_capability();
    uint64_t known = last >= 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
    // Nobody can hand out a capability it does not hold (capset(2)): `--privileged` under a
    // runtime that runs with fewer than all gets what the runtime has.
    capabilities &= known & permitted_now();
    // The order is the kernel's, not a choice:
    // 1. The bounding set first: dropping from it needs CAP_SETPCAP, which a non-root user loses
    //    at setuid. It is the ceiling for every later execve (capabilities(7)): what is not in it
    //    no program can ever get back, not even a setuid-root one.
    for (int cap = 0; cap <= last; cap++) {
        if (!has(capabilities, cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            FAIL("drop capabilities from the bounding set (PR_CAPBSET_DROP)");
    }
    // 2. Keep the permitted set across setuid: without PR_SET_KEEPCAPS the kernel empties it when
    //    the last uid 0 goes, and the filter below still needs CAP_SYS_ADMIN to be installed.
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) FAIL("keep capabilities across setuid (PR_SET_KEEPCAPS)");
    // 3. Supplementary groups, then the gid, then the uid: setgroups and setgid need CAP_SETGID,
    //    which the setuid to a non-root user takes away: after it they would fail, and a user
    //    left in init's groups would keep root's group 0 (apple/containerization's vmexec.swift
    //    has the same rule: setuid goes last, because it drops the right to set groups).
    if (setgroups(group_count, groups) != 0) FAIL("setgroups");
    if (setresgid(gid, gid, gid) != 0) FAIL("setgid");
    if (setresuid(uid, uid, uid) != 0) FAIL("setuid");
    // 4. No capability may come back through execve from the ambient set.
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        FAIL("clear the ambient capabilities");
    // 5. no_new_privs: from here on no execve can raise privileges (setuid bits, file
    //    capabilities are ignored). It also lets an unprivileged process install a filter.
    int no_new_privs = flags & CS_PRIVILEGES_NO_NEW_PRIVS;
    if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) FAIL("set no_new_privs");
    // 6. The filter goes in as late as the kernel allows. Without no_new_privs, installing one
    //    needs CAP_SYS_ADMIN in the effective set (seccomp(2)), so it must come before the capset
    //    that gives CAP_SYS_ADMIN up (runc orders it the same way: opencontainers/runc:
    //    libcontainer/standard_init_linux.go); setuid emptied the effective set, so it is raised
    //    to the permitted one for that one call. With no_new_privs it comes last of all.
    int seccomp = flags & CS_PRIVILEGES_SECCOMP;
    if (seccomp && !no_new_privs) {
        if (set_capabilities(permitted_now(), permitted_now()) != 0) FAIL("raise the effective capabilities");
        if (cs_install_seccomp(capabilities) != 0) FAIL("install the seccomp filter");
    }
    // 7. The final sets. Root keeps `capabilities` as permitted and effective (execve recomputes
    //    them from the bounding set anyway: root's programs count as having every file
    //    capability). Any other user ends with none: execve would drop them from such a user too,
    //    and this way not even the instructions before the execve run privileged.
    uint64_t kept = uid == 0 ? capabilities : 0;
    if (set_capabilities(kept, kept) != 0) FAIL("set capabilities (capset)");
    if (seccomp && no_new_privs && cs_install_seccomp(capabilities) != 0) FAIL("install the seccomp filter");
    return 0;
}

// MARK: privileges of a running container, for exec

static uint64_t parse_hex(const char *text) { return strtoull(text, NULL, 16); }

int cs_read_privileges(pid_t pid, struct cs_privileges *privileges) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *status = fopen(path, "re");
    if (status == NULL) return -1;
    memset(privileges, 0, sizeof(*privileges));
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof(line), status)) {
        unsigned a, b;
        if (sscanf(line, "Uid: %u", &a) == 1) {
            privileges->uid = a;
            found |= 1;
        } else if (sscanf(line, "Gid: %u", &b) == 1) {
            privileges->gid = b;
            found |= 2;
        } else if (strncmp(line, "CapBnd:", 7) == 0) {
            privileges->capabilities = parse_hex(line + 7);
            found |= 4;
        } else if (strncmp(line, "NoNewPrivs:", 11) == 0 && atoi(line + 11) == 1) {
            privileges->flags |= CS_PRIVILEGES_NO_NEW_PRIVS;
        } else if (strncmp(line, "Seccomp:", 8) == 0 && atoi(line + 8) != 0) {
            privileges->flags |= CS_PRIVILEGES_SECCOMP;
        } else if (strncmp(line, "Groups:", 7) == 0) {
            char *cursor = line + 7;
            char *end;
            for (long group = strtol(cursor, &end, 10); end != cursor && privileges->group_count < CS_MAX_GROUPS;
                 group = strtol(cursor, &end, 10)) {
                privileges->groups[privileges->group_count++] = (gid_t)group;
                cursor = end;
            }
        }
    }
    fclose(status);
    if (found != 7) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int cs_apply_read_privileges(const struct cs_privileges *privileges, const char **stage) {
    return cs_apply_privileges(privileges->capabilities, privileges->uid, privileges->gid, privileges->groups,
                               privileges->group_count, privileges->flags, stage);
}

// MARK: the cgroup v2 device program

// Each device the container may read and write: docker's defaults. minor -1 is every minor.
static const struct {
    int type;
    int major;
    int minor;
} allowed_devices[] = {
    {BPF_DEVCG_DEV_CHAR, 1, 3},    // null
    {BPF_DEVCG_DEV_CHAR, 1, 5},    // zero
    {BPF_DEVCG_DEV_CHAR, 1, 7},    // full
    {BPF_DEVCG_DEV_CHAR, 1, 8},    // random
    {BPF_DEVCG_DEV_CHAR, 1, 9},    // urandom
    {BPF_DEVCG_DEV_CHAR, 5, 0},    // tty
    {BPF_DEVCG_DEV_CHAR, 5, 1},    // console
    {BPF_DEVCG_DEV_CHAR, 5, 2},    // ptmx
    {BPF_DEVCG_DEV_CHAR, 136, -1}, // pts/*
};
enum { allowed_count = sizeof(allowed_devices) / sizeof(allowed_devices[0]) };

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

int cs_attach_device_program(int cgroup_fd) {
    struct bpf_insn program[16 + 4 * allowed_count];
    int jumps_to_allow[2 + allowed_count];
    int n = 0, jumps = 0;
    // The kernel passes struct bpf_cgroup_dev_ctx in r1: access_type (type in the low 16 bits, the
    // access wanted in the high 16), major, minor. Return 1 allows, 0 refuses with EPERM.
    program[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0);
    program[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0);
    program[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
    program[n++] = INSN(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
    program[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0);
    program[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0);
    // mknod of any node is allowed, as docker allows it ("c *:* m", "b *:* m"): making a node
    // is harmless when opening it is refused.
    program[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_0, BPF_REG_3, 0, 0);
    program[n++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_0, 0, 0, ~BPF_DEVCG_ACC_MKNOD);
    jumps_to_allow[jumps++] = n;
    program[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 0, 0);
    for (int i = 0; i < allowed_count; i++) {
        int minor = allowed_devices[i].minor >= 0;
        // Not this device: skip the rest of this rule.
        program[n] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, (short)(2 + minor), allowed_devices[i].type);
        n++;
        program[n] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, (short)(1 + minor), allowed_devices[i].major);
        n++;
        if (minor) program[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 1, allowed_devices[i].minor);
        jumps_to_allow[jumps++] = n;
        program[n++] = INSN(BPF_JMP | BPF_JA, 0, 0, 0, 0);
    }
    program[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
    program[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    int allow = n;
    program[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
    program[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (int i = 0; i < jumps; i++) program[jumps_to_allow[i]].off = (short)(allow - jumps_to_allow[i] - 1);

    union bpf_attr load;
    memset(&load, 0, sizeof(load));
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (uint64_t)(uintptr_t)program;
    load.insn_cnt = (uint32_t)n;
    load.license = (uint64_t)(uintptr_t) "Apache-2.0";
    int program_fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
    if (program_fd < 0) return -1;
    union bpf_attr attach;
    memset(&attach, 0, sizeof(attach));
    attach.target_fd = (uint32_t)cgroup_fd;
    attach.attach_bpf_fd = (uint32_t)program_fd;
    attach.attach_type = BPF_CGROUP_DEVICE;
    int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof(attach));
    int saved = errno;
    // The attachment holds the program now; it goes when the cgroup is removed.
    close(program_fd);
    errno = saved;
    return rc;
}
