/* Record layout shared by tracer.bpf.c, loader.c and osptrack/trace/ebpf/log.py (struct formats
 * there must match). Every record starts with `struct hdr`; all integers are little-endian. */
#ifndef OSPTRACK_RECORD_H
#define OSPTRACK_RECORD_H

#define LOG_MAGIC 0x4b525450534f0003ULL /* "OSPTRK" + version 3 */

enum { REC_HEADER = 1, REC_ENTER = 2, REC_EXIT = 3, REC_FORK = 4, REC_TASK_EXIT = 5, REC_SIGNAL = 6, REC_LOST = 7, REC_RETRY = 8, REC_ARGV = 9 };
/* F_UNREADABLE: an argv/env string could not be read at entry (written as UNREADABLE_MARK).
 * F_INTERP (REC_ARGV): a #! or binfmt_misc interpreter rewrote argv (argv[0] replaced, its own
 * name and argument put first), so only the tail is the caller's. */
enum { F_TRUNCATED = 1, F_NOBASE = 2, F_RETRY = 4, F_UNREADABLE = 8, F_INTERP = 16 };
#define UNREADABLE_MARK 0xff /* one byte, then the NUL: not valid UTF-8, so not a real argument */
enum { SP_NONE = 0, SP_EXEC = 1, SP_SOCKADDR = 2, SP_SENDMSG = 3, SP_LISTEN = 4, SP_OPEN = 5, SP_SYMLINK = 6 };

/* A probe (stat, access, readlink) becomes an event only for a sensitive path
 * (osptrack.trace.sensitive): one under /etc, or a home's (/root, /home/X) entry whose name is a
 * dot and one of these 3 characters, then anything. Probes of an absolute path that is neither,
 * with no ".", ".." or empty component, and of an empty path (AT_EMPTY_PATH), are not recorded
 * (tests/trace/test_ebpf_probe_filter.py checks the list against SENSITIVE_PATHS). */
#define SENSITIVE_DOT3 "aws", "azu", "bas", "bit", "car", "com", "con", "doc", "ele", "env", "eth", "gem", "git", "gnu", "kub", "loc", "mon", "moz", "net", "pyp", "ssh", "zsh"

#define SPEC_SLOTS 512
#define MAX_RUNS 64 /* runs one resident tracer follows at once (slot 0 is unused) */
#define RINGBUF_BYTES (32 << 20)
#define WAKE_FRACTION 64 /* the tracer is woken once this share of the ring buffer waits (512 KiB; tracer.bpf.c wake_flags) */
#define DATA_HALF 16384
#define STR_MAX 4096 /* like strace -s 4096 */
#define ARRAY_MAX 256
#define ARGV_CAP 256
#define ENV_CAP 256 /* osptrack.trace.strace.ENV_CAP */
#define SOCKADDR_MAX 128
#define NLEN 6
/* SIGILL SIGABRT SIGBUS SIGSEGV SIGXCPU SIGXFSZ SIGSYS: osptrack.trace.strace.RECORDED_SIGNALS */
#define RECORDED_SIGNAL_MASK ((1ULL << 4) | (1ULL << 6) | (1ULL << 7) | (1ULL << 11) | (1ULL << 24) | (1ULL << 25) | (1ULL << 31))

#ifndef __VMLINUX_H__
#include <stdint.h>
typedef uint8_t u8;
typedef int8_t s8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef int32_t s32;
typedef uint64_t u64;
typedef int64_t s64;
#endif

/* What the BPF side reads at a syscall's entry: argument indices, -1 for none. */
struct spec {
	u8 wanted;
	s8 path0, dirfd0, path1, dirfd1, fdpath;
	s8 addr, addrlen;
	u8 special;
	u8 probe; /* a stat/access/readlink probe: skipped in runs traced without probes */
	u8 pad[6];
};

struct hdr {
	u32 size; /* of the whole record */
	u8 type;
	u8 flags;
	u16 nr; /* syscall number */
	u32 tid;
	u32 tgid;
	u64 ts; /* CLOCK_BOOTTIME ns */
	u32 slot; /* the run the task belongs to (a resident tracer serves several at once) */
	u32 pad;
};

/* data: len[0] bytes base of path 0 (components leaf first, NUL-terminated), len[1] path 0,
 * len[2] base of path 1, len[3] path 1, len[4] argv, sockaddr or symlink target, len[5] envp. For fchmod,
 * ftruncate, fchdir, len[0] is the fd's path (components). */
struct enter_rec {
	struct hdr h;
	u64 args[6];
	u16 len[NLEN];
	u32 pad;
	u8 data[DATA_HALF + STR_MAX + 256];
};

/* REC_RETRY (just before a REC_EXIT) is laid out as enter_rec, with len[1] and len[3] set: the
 * path arguments read again at exit because their page was not resident at entry. */
struct exit_rec {
	struct hdr h;
	s64 ret;
	u32 mode;  /* open: the returned fd's i_mode */
	u16 family; /* listen: the socket's family, port, type, address */
	u16 port;
	u16 sotype;
	u16 pad;
	u8 addr[16];
};

/* REC_ARGV, at sched_process_exec (the exec succeeded): the program's path as execve got it
 * (bprm->filename, a kernel copy: flen bytes with its NUL), then the new image's argv as the
 * kernel laid it out (mm->arg_start..arg_end, NUL-separated), up to DATA_HALF bytes. The
 * caller's strings at the execve entry can be unreadable (a page not faulted in yet), and
 * cannot be read again at the exit (the old image is gone); these copies can. `tid` is the
 * tid that called execve (it changes when a non-leader thread execs). */
struct argv_rec {
	struct hdr h;
	u32 flen;
	u32 len;  /* argv bytes, after the path */
	u32 argc; /* the new image's argc */
	u32 pad;
	u8 data[STR_MAX + DATA_HALF];
};

struct fork_rec {
	struct hdr h; /* the parent */
	u32 child_tid;
	u32 child_tgid;
	u32 child_nstid; /* the child's tid in its own pid namespace (what clone returned) */
	u32 pad;
};

struct task_exit_rec {
	struct hdr h;
	s32 exit_code; /* wait status: code << 8 | signal */
	u8 group_dead;
	u8 pad[3];
};

struct signal_rec {
	struct hdr h;
	s32 sig;
	s32 code;    /* si_code */
	s32 syscall; /* SIGSYS from seccomp: the trapped syscall's number */
	u32 arch;    /* and its AUDIT_ARCH_* */
};

/* Written by the loader: first record (magic, clock offset, root pid) and last (lost count). */
struct header_rec {
	struct hdr h;
	u64 magic;
	s64 boot_to_epoch_ns;
	u32 root_pid;
	u32 pad;
};

struct lost_rec {
	struct hdr h;
	u64 lost;
};

#endif
