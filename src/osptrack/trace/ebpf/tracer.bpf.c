// SPDX-License-Identifier: GPL-2.0
// osptrack's eBPF tracer: syscall entry/exit and the process tree of one sandbox run.
//
// Only tasks in `tracked` are traced: the loader puts its child there (with the run's slot)
// before it execs, and
// sched_process_fork adds every child of a tracked task in the kernel, before the child runs,
// so a package cannot fork its way out. Records go to one ring buffer (layout: record.h);
// any record that does not fit is counted in `lost` so the run can say its trace is incomplete.
// Relative paths get their base (cwd or dirfd) resolved here, from the task's own fs/files
// structures, as path components walked up to the task's root (the sandbox's view).
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "record.h"

char LICENSE[] SEC("license") = "GPL";

#define AT_FDCWD -100
#define MAX_DEPTH 40
#define NAME_BOUND 256
#define DATA_MASK (DATA_HALF - 1)

// data + (off mod DATA_HALF), masked in a way the compiler cannot drop (a range check alone
// is folded away before the verifier sees it).
static __always_inline u8 *at(struct enter_rec *r, u32 off)
{
	u64 o = off;
	asm volatile("%[o] &= 0x3fff" : [o] "+r"(o));
	return &r->data[o];
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);  // allocated on use: a preallocated map costs load time
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, u32);  // the run's slot
} tracked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SPEC_SLOTS);
	__type(key, u32);
	__type(value, struct spec);
} specs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RINGBUF_BYTES);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct enter_rec);
} scratch SEC(".maps");

// Per run: 1 when its stat/access/readlink probes are not wanted (strace_command(probes=False)).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RUNS);
	__type(key, u32);
	__type(value, u8);
} no_probes SEC(".maps");

// Per run: records that could not be delivered (ring buffer or a map full), and tasks alive.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RUNS);
	__type(key, u32);
	__type(value, u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RUNS);
	__type(key, u32);
	__type(value, s64);
} live SEC(".maps");

// Path arguments whose page was not resident at entry (a fresh binary's .rodata): their
// pointers, read again at exit (the kernel has faulted them in to do the call).
struct retry_ptrs {
	u64 p[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);  // allocated on use: a preallocated map costs load time
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, struct retry_ptrs);
} retry SEC(".maps");

// The socket fd of listen/connect/bind/sendto/sendmsg, from entry to exit: the socket's type,
// and for listen its address (an ephemeral port is known only once the call is done).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);  // allocated on use: a preallocated map costs load time
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, u64);
} listen_fd SEC(".maps");

// Probes whose entry was recorded (the filter below kept them): only their exit is recorded.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, u8);
} probe_kept SEC(".maps");

// Whether a record wakes the resident tracer. By default every record that finds the consumer
// caught up wakes it: about 1,500 context switches per corpus package, CPU beside the package
// that a batch's other worker could have used. Records are left for the tracer's own timer
// instead, and it is woken once 1/WAKE_FRACTION of the buffer waits, so a burst cannot fill it
// meanwhile. No wake-up is needed for correctness: a run's end is told by its client's message,
// and the tracer consumes everything before it closes that run's log.
static __always_inline u64 wake_flags(void)
{
	u64 waiting = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
	u64 size = bpf_ringbuf_query(&rb, BPF_RB_RING_SIZE);
	return waiting >= size / WAKE_FRACTION ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void count_lost(u32 slot)
{
	u64 *n = bpf_map_lookup_elem(&lost, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void add_live(u32 slot, s64 d)
{
	s64 *n = bpf_map_lookup_elem(&live, &slot);
	if (n)
		__sync_fetch_and_add(n, d);
}

static __always_inline void fill_hdr(struct hdr *h, u8 type, u16 nr, u32 size, u32 slot)
{
	h->slot = slot;
	h->pad = 0;
	u64 id = bpf_get_current_pid_tgid();
	h->size = size;
	h->type = type;
	h->flags = 0;
	h->nr = nr;
	h->tid = (u32)id;
	h->tgid = id >> 32;
	h->ts = bpf_ktime_get_boot_ns();
}

// The current task's run slot, or 0 when it is not traced.
static __always_inline u32 slot_of_current(void)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	u32 *slot = bpf_map_lookup_elem(&tracked, &tid);
	return slot ? *slot : 0;
}

static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	struct file *f = NULL;
	if (fd < 0 || fd >= max)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

// Global (non-static) functions are verified once, with unknown arguments: the loops that
// call them then keep few verifier states (an inlined copy would be re-verified per offset).
__noinline int copy_kernel_str(struct enter_rec *r, u32 off, u64 src)
{
	if (!r || off >= DATA_HALF)
		return 0;
	long n = bpf_probe_read_kernel_str(at(r, off), NAME_BOUND, (const void *)src);
	return n > 0 ? n : 0;
}

__noinline int copy_user_str(struct enter_rec *r, u32 off, u64 src)
{
	if (!r)
		return 0;
	if (off >= DATA_HALF) {
		r->h.flags |= F_TRUNCATED;
		return 0;
	}
	long n = bpf_probe_read_user_str(at(r, off), STR_MAX, (const void *)src);
	if (n <= 0) {
		*at(r, off) = 0;
		return 1;
	}
	if (n == STR_MAX)
		r->h.flags |= F_TRUNCATED;
	return n;
}

static __always_inline u32 put_user_str(struct enter_rec *r, u32 off, const char *src)
{
	return off + copy_user_str(r, off, (u64)src);
}

struct walk {
	struct enter_rec *r;
	u32 off;
	struct dentry *d, *root_d;
	struct vfsmount *vm, *root_m;
	struct mount *mnt;
	int complete;
};

static long walk_step(u64 i, void *ctx)
{
	struct walk *w = ctx;
	struct dentry *d = w->d;
	struct vfsmount *vm = w->vm;
	struct mount *mnt = w->mnt;
	if (d == w->root_d && vm == w->root_m) {
		w->complete = 1;
		return 1;
	}
	struct dentry *mnt_root = BPF_CORE_READ(vm, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == mnt_root || d == parent) {
		struct mount *pm = BPF_CORE_READ(mnt, mnt_parent);
		if (pm == mnt || pm == NULL) {
			w->complete = 1;
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = pm;
		w->vm = (struct vfsmount *)((void *)pm + bpf_core_field_offset(struct mount, mnt));
		return 0;
	}
	if (w->off >= DATA_HALF)
		return 1;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	int n = copy_kernel_str(w->r, w->off, (u64)name);
	if (n <= 0)
		return 1;
	w->off += n;
	w->d = parent;
	return 0;
}

// Writes the components of a path from leaf to root, each NUL-terminated, at data[off..];
// returns the new offset. The reader reverses them. Stops at the task's root or a namespace's
// root, like d_path.
static __noinline u32 put_path(struct enter_rec *r, u32 off, struct dentry *d, struct vfsmount *vm,
			       struct task_struct *task)
{
	struct walk w = {
		.r = r,
		.off = off,
		.d = d,
		.vm = vm,
		.root_d = BPF_CORE_READ(task, fs, root.dentry),
		.root_m = BPF_CORE_READ(task, fs, root.mnt),
		.mnt = (struct mount *)((void *)vm - bpf_core_field_offset(struct mount, mnt)),
	};
	bpf_loop(MAX_DEPTH, walk_step, &w, 0);
	if (!w.complete)
		r->h.flags |= F_TRUNCATED;
	return w.off;
}

// The directory a relative path argument is relative to: the dirfd's file, or the cwd.
static __always_inline u32 put_base(struct enter_rec *r, u32 off, long dirfd, struct task_struct *task)
{
	if ((int)dirfd == AT_FDCWD) {
		struct dentry *d = BPF_CORE_READ(task, fs, pwd.dentry);
		struct vfsmount *m = BPF_CORE_READ(task, fs, pwd.mnt);
		return put_path(r, off, d, m, task);
	}
	struct file *f = fd_file(task, dirfd);
	if (!f) {
		r->h.flags |= F_NOBASE;
		return off;
	}
	return put_path(r, off, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), task);
}

struct arr {
	struct enter_rec *r;
	u32 off;
	const char *const *arr;
	u32 cap;
};

static long arr_step(u64 i, void *ctx)
{
	struct arr *a = ctx;
	const char *s = NULL;
	if (i >= a->cap || a->off >= DATA_HALF) {
		a->r->h.flags |= F_TRUNCATED;
		return 1;
	}
	if (bpf_probe_read_user(&s, sizeof(s), &a->arr[i]) || !s)
		return 1;
	u32 start = a->off;
	a->off = put_user_str(a->r, a->off, s);
	// A string not paged in yet reads as nothing: say so, rather than record a silent "".
	// (On a successful exec REC_ARGV replaces argv; this stays for failed ones, and for env.)
	if (a->off == start + 1 && start < DATA_HALF - 1 && *at(a->r, start) == 0) {
		char c = 0;
		if (bpf_probe_read_user(&c, 1, s)) {
			*at(a->r, start) = UNREADABLE_MARK;
			*at(a->r, start + 1) = 0;
			a->off = start + 2;
			a->r->h.flags |= F_UNREADABLE;
		}
	}
	return 0;
}

// A NULL-terminated array of user strings (argv, envp), up to `cap` entries.
static __noinline u32 put_user_array(struct enter_rec *r, u32 off, const char *const *arr, u32 cap)
{
	struct arr a = {.r = r, .off = off, .arr = arr, .cap = cap};
	bpf_loop(ARRAY_MAX + 1, arr_step, &a, 0);
	return a.off;
}

static __always_inline u32 put_user_bytes(struct enter_rec *r, u32 off, const void *src, u64 len)
{
	if (len > SOCKADDR_MAX)
		len = SOCKADDR_MAX;
	if (off >= DATA_HALF || !src || len == 0)
		return off;
	if (bpf_probe_read_user(at(r, off), len & (SOCKADDR_MAX * 2 - 1), src))
		return off;
	return off + len;
}

static __always_inline u64 arg(struct pt_regs *regs, int i)
{
	switch (i) {
	case 0: return BPF_CORE_READ(regs, di);
	case 1: return BPF_CORE_READ(regs, si);
	case 2: return BPF_CORE_READ(regs, dx);
	case 3: return BPF_CORE_READ(regs, r10);
	case 4: return BPF_CORE_READ(regs, r8);
	case 5: return BPF_CORE_READ(regs, r9);
	}
	return 0;
}

// A probe's path string, read a byte at a time: its first three components (up to 8 bytes
// each, and their lengths), and whether lexical normalisation could change them.
struct scan {
	struct enter_rec *r;
	u32 off, len; // data[off + 1 .. off + len): the string after its leading '/', NUL included
	u32 comp;     // the component being read, from 0
	u32 pos;      // its bytes so far
	u64 w[4];
	u32 n[4];
	u8 prev;
	u8 unclear; // "..", or an empty or "." component: keep the probe
};

static long scan_step(u64 i, void *ctx)
{
	struct scan *s = ctx;
	if (i + 1 >= s->len)
		return 1;
	u8 c = *at(s->r, s->off + 1 + i);
	if (c == 0 || c == '/') {
		if (s->pos == 0 || (s->pos == 1 && s->prev == '.'))
			s->unclear = 1;
		if (c == 0 || s->unclear)
			return 1;
		s->comp++;
		s->pos = 0;
	} else {
		if (c == '.' && s->prev == '.') {
			s->unclear = 1;
			return 1;
		}
		if (s->comp < 3) {
			if (s->pos < 8)
				s->w[s->comp & 3] |= (u64)c << (8 * (s->pos & 7));
			s->n[s->comp & 3] = s->pos + 1;
		}
		s->pos++;
	}
	s->prev = c;
	return 0;
}

static const char dot3[][4] = {SENSITIVE_DOT3};

// A home's entry that may be sensitive: "." and one of SENSITIVE_DOT3's names.
static __always_inline int sensitive_dot(u64 w)
{
	if ((w & 0xff) != '.')
		return 0;
	u32 three = (w >> 8) & 0xffffff;
	int k;
#pragma unroll
	for (k = 0; k < (int)(sizeof(dot3) / sizeof(dot3[0])); k++)
		if (three == ((u32)dot3[k][0] | (u32)dot3[k][1] << 8 | (u32)dot3[k][2] << 16))
			return 1;
	return 0;
}

#define W3(a, b, c) ((u64)(a) | (u64)(b) << 8 | (u64)(c) << 16)
#define W4(a, b, c, d) (W3(a, b, c) | (u64)(d) << 24)

// Whether a probe's event could be recorded by the reader (see SENSITIVE_DOT3): 0 only when
// it certainly would not be. The path is path 0, read at entry (not F_RETRY).
static __noinline int probe_wanted(struct enter_rec *r)
{
	if (!r || r->h.flags & F_RETRY)
		return 1;
	u32 off = r->len[0], len = r->len[1];
	if (off >= DATA_HALF || len == 0)
		return 1;
	u8 first = *at(r, off);
	if (first == 0)
		return 0; // AT_EMPTY_PATH: a stat of an open fd, never an event
	if (first != '/')
		return 1; // relative: the base would have to be parsed too (rare)
	struct scan s = {.r = r, .off = off, .len = len};
	bpf_loop(STR_MAX, scan_step, &s, 0);
	if (s.unclear)
		return 1;
	if (s.n[0] == 3 && s.w[0] == W3('e', 't', 'c'))
		return 1;
	if (s.n[0] == 4 && s.w[0] == W4('r', 'o', 'o', 't'))
		return s.comp >= 1 && sensitive_dot(s.w[1]);
	if (s.n[0] == 4 && s.w[0] == W4('h', 'o', 'm', 'e'))
		return s.comp >= 2 && sensitive_dot(s.w[2]);
	return 0;
}

// One path argument: its base when relative, then the string itself.
static __always_inline u32 put_path_arg(struct enter_rec *r, u32 off, int slot, s8 pi, s8 di,
					struct task_struct *task)
{
	const char *p = (const char *)r->args[pi & 7];
	char first = 0;
	u32 start = off;
	if (bpf_probe_read_user(&first, 1, p))
		r->h.flags |= F_RETRY;  // not paged in yet: read again at the exit, once the kernel has
	if (first != '/') {
		long dirfd = di >= 0 ? (long)r->args[di & 7] : AT_FDCWD;
		off = put_base(r, off, dirfd, task);
	}
	r->len[slot * 2] = off - start;
	start = off;
	off = put_user_str(r, off, p);
	r->len[slot * 2 + 1] = off - start;
	return off;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(on_enter, struct pt_regs *regs, long id)
{
	// Every syscall of the machine comes here: the syscall's spec (an array slot) first, since
	// most calls (read, write, mmap, futex...) are not traced; the task's hash lookup after.
	if (id < 0 || id >= SPEC_SLOTS)
		return 0;
	u32 key = id;
	struct spec *sp = bpf_map_lookup_elem(&specs, &key);
	if (!sp || !sp->wanted)
		return 0;
	u32 slot = slot_of_current();
	if (!slot)
		return 0;
	if (sp->probe) {
		u8 *skip = bpf_map_lookup_elem(&no_probes, &slot);
		if (skip && *skip)
			return 0;
	}
	u32 zero = 0;
	struct enter_rec *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	fill_hdr(&r->h, REC_ENTER, id, 0, slot);
	int i;
	for (i = 0; i < 6; i++)
		r->args[i] = arg(regs, i);
	if (sp->probe && sp->path0 >= 0) {
		char first = 1;  // AT_EMPTY_PATH (a stat of an open fd): no event; skip its fd's walk too
		if (!bpf_probe_read_user(&first, 1, (const char *)r->args[sp->path0 & 7]) && first == 0)
			return 0;
	}
	for (i = 0; i < NLEN; i++)
		r->len[i] = 0;
	u32 off = 0, start;
	if (sp->path0 >= 0)
		off = put_path_arg(r, off, 0, sp->path0, sp->dirfd0, task);
	if (sp->path1 >= 0)
		off = put_path_arg(r, off, 1, sp->path1, sp->dirfd1, task);
	if (sp->fdpath >= 0) {  // fchmod, ftruncate, fchdir: the fd's path
		struct file *f = fd_file(task, (long)r->args[sp->fdpath & 7]);
		start = off;
		if (f)
			off = put_path(r, off, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), task);
		else
			r->h.flags |= F_NOBASE;
		r->len[0] = off - start;
	}
	if (sp->special == SP_EXEC) {
		int a = sp->path0 + 1;
		start = off;
		off = put_user_array(r, off, (const char *const *)r->args[a & 7], ARGV_CAP);
		r->len[4] = off - start;
		start = off;
		off = put_user_array(r, off, (const char *const *)r->args[(a + 1) & 7], ENV_CAP);
		r->len[5] = off - start;
	} else if (sp->special == SP_SOCKADDR) {
		start = off;
		off = put_user_bytes(r, off, (const void *)r->args[sp->addr & 7], r->args[sp->addrlen & 7]);
		r->len[4] = off - start;
	} else if (sp->special == SP_SYMLINK) {
		start = off;
		off = put_user_str(r, off, (const char *)r->args[sp->addr & 7]);
		r->len[4] = off - start;
	} else if (sp->special == SP_SENDMSG) {
		struct user_msghdr mh = {};
		if (!bpf_probe_read_user(&mh, sizeof(mh), (const void *)r->args[1])) {
			start = off;
			off = put_user_bytes(r, off, mh.msg_name, mh.msg_namelen);
			r->len[4] = off - start;
		}
	}
	if (sp->special == SP_LISTEN || sp->special == SP_SOCKADDR || sp->special == SP_SENDMSG) {
		u32 tid = r->h.tid;
		u64 fd = r->args[0];
		bpf_map_update_elem(&listen_fd, &tid, &fd, BPF_ANY);
	}
	if (sp->probe) {
		// Most probes are of paths no event is made of: neither they nor their exit are
		// recorded. The exit is recorded for the probes kept.
		u32 tid = r->h.tid;
		u8 one = 1;
		if (!probe_wanted(r))
			return 0;
		bpf_map_update_elem(&probe_kept, &tid, &one, BPF_ANY);
	}
	if (r->h.flags & F_RETRY) {
		struct retry_ptrs rp = {};
		if (sp->path0 >= 0)
			rp.p[0] = r->args[sp->path0 & 7];
		if (sp->path1 >= 0)
			rp.p[1] = r->args[sp->path1 & 7];
		u32 tid = r->h.tid;
		bpf_map_update_elem(&retry, &tid, &rp, BPF_ANY);
	}
	u64 size = sizeof(struct enter_rec) - sizeof(r->data) + off;
	asm volatile("" : "+r"(size));  // keep the check below for the verifier
	if (size > sizeof(struct enter_rec))
		size = sizeof(struct enter_rec);
	r->h.size = size;
	if (bpf_ringbuf_output(&rb, r, size, wake_flags()))
		count_lost(slot);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_exit, struct pt_regs *regs, long ret)
{
	long id = regs->orig_ax;  // a BTF pointer: a direct load, no helper call (as on_enter's order)
	if (id < 0 || id >= SPEC_SLOTS)
		return 0;
	u32 key = id;
	struct spec *sp = bpf_map_lookup_elem(&specs, &key);
	if (!sp || !sp->wanted)
		return 0;
	u32 slot = slot_of_current();
	if (!slot)
		return 0;
	if (sp->probe) {
		u8 *skip = bpf_map_lookup_elem(&no_probes, &slot);
		if (skip && *skip)
			return 0;
	}
	u32 tid = (u32)bpf_get_current_pid_tgid();
	if (sp->probe) {
		if (!bpf_map_lookup_elem(&probe_kept, &tid))
			return 0; // its entry was not recorded
		bpf_map_delete_elem(&probe_kept, &tid);
	}
	struct retry_ptrs *rp = bpf_map_lookup_elem(&retry, &tid);
	if (rp) {
		u32 zero = 0;
		struct enter_rec *s = bpf_map_lookup_elem(&scratch, &zero);
		if (s) {
			fill_hdr(&s->h, REC_RETRY, id, 0, slot);
			u32 off = 0;
			int i;
			for (i = 0; i < NLEN; i++)
				s->len[i] = 0;
			if (rp->p[0]) {
				off = put_user_str(s, off, (const char *)rp->p[0]);
				s->len[1] = off;
			}
			if (rp->p[1]) {
				u32 start = off;
				off = put_user_str(s, off, (const char *)rp->p[1]);
				s->len[3] = off - start;
			}
			u64 size = sizeof(struct enter_rec) - sizeof(s->data) + off;
			asm volatile("" : "+r"(size));
			if (size > sizeof(struct enter_rec))
				size = sizeof(struct enter_rec);
			s->h.size = size;
			if (bpf_ringbuf_output(&rb, s, size, wake_flags()))
				count_lost(slot);
		}
		bpf_map_delete_elem(&retry, &tid);
	}
	struct exit_rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		count_lost(slot);
		return 0;
	}
	fill_hdr(&r->h, REC_EXIT, id, sizeof(*r), slot);
	r->ret = ret;
	r->mode = 0;
	r->port = 0;
	r->family = 0;
	__builtin_memset(r->addr, 0, sizeof(r->addr));
	struct task_struct *task = bpf_get_current_task_btf();
	if (sp->special == SP_OPEN && ret >= 0) {
		struct file *f = fd_file(task, ret);
		if (f)
			r->mode = BPF_CORE_READ(f, f_inode, i_mode);
	} else if (sp->special == SP_LISTEN || sp->special == SP_SOCKADDR || sp->special == SP_SENDMSG) {
		u32 tid = r->h.tid;
		u64 *fd = bpf_map_lookup_elem(&listen_fd, &tid);
		if (fd) {
			struct file *f = fd_file(task, *fd);
			bpf_map_delete_elem(&listen_fd, &tid);
			if (f) {
				struct socket *sock = BPF_CORE_READ(f, private_data);
				struct sock *sk = BPF_CORE_READ(sock, sk);
				r->family = BPF_CORE_READ(sk, __sk_common.skc_family);
				r->port = BPF_CORE_READ(sk, __sk_common.skc_num);
				r->sotype = BPF_CORE_READ(sk, sk_type);
				if (r->family == 2) {
					u32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
					__builtin_memcpy(r->addr, &a, 4);
				} else if (r->family == 10) {
					BPF_CORE_READ_INTO(&r->addr, sk, __sk_common.skc_v6_rcv_saddr);
				}
			}
		}
	}
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct argv_rec);
} argv_scratch SEC(".maps");

// A successful exec: the new image's argv. The kernel wrote those pages during the exec
// (copy_strings), so they are resident, unlike the caller's strings at the execve entry.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	u32 slot = slot_of_current();
	if (!slot)
		return 0;
	u32 zero = 0;
	struct argv_rec *r = bpf_map_lookup_elem(&argv_scratch, &zero);
	if (!r)
		return 0;
	fill_hdr(&r->h, REC_ARGV, 0, 0, slot);
	r->h.tid = old_pid;
	r->argc = BPF_CORE_READ(bprm, argc);
	if (BPF_CORE_READ(bprm, interp) != BPF_CORE_READ(bprm, filename))
		r->h.flags |= F_INTERP;
	long fl = bpf_probe_read_kernel_str(r->data, STR_MAX, BPF_CORE_READ(bprm, filename));
	u64 flen = fl > 0 ? fl : 0;
	asm volatile("%[f] &= 0xfff" : [f] "+r"(flen));  // < STR_MAX, for the verifier
	r->flen = flen;
	u64 start = BPF_CORE_READ(p, mm, arg_start);
	u64 end = BPF_CORE_READ(p, mm, arg_end);
	u64 len = end > start ? end - start : 0;
	if (len > DATA_HALF) {
		len = DATA_HALF;
		r->h.flags |= F_TRUNCATED;
	}
	asm volatile("" : "+r"(len));
	if (len > DATA_HALF)
		len = DATA_HALF;
	if (len && bpf_probe_read_user(&r->data[flen], len, (const void *)start)) {
		len = 0;  // the reader keeps the entry's argv
		r->h.flags |= F_UNREADABLE;
	}
	r->len = len;
	u64 size = sizeof(*r) - sizeof(r->data) + flen + len;
	asm volatile("" : "+r"(size));
	if (size > sizeof(*r))
		size = sizeof(*r);
	r->h.size = size;
	if (bpf_ringbuf_output(&rb, r, size, wake_flags()))
		count_lost(slot);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	u32 ptid = BPF_CORE_READ(parent, pid);
	u32 *ps = bpf_map_lookup_elem(&tracked, &ptid);
	if (!ps)
		return 0;
	u32 slot = *ps;
	u32 ctid = BPF_CORE_READ(child, pid);
	if (bpf_map_update_elem(&tracked, &ctid, &slot, BPF_ANY)) {
		count_lost(slot);  // the map is full: this child goes untraced, and the run knows it
		return 0;
	}
	add_live(slot, 1);
	struct fork_rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		count_lost(slot);
		return 0;
	}
	fill_hdr(&r->h, REC_FORK, 0, sizeof(*r), slot);
	r->h.tid = ptid;
	r->h.tgid = BPF_CORE_READ(parent, tgid);
	r->child_tid = ctid;
	r->child_tgid = BPF_CORE_READ(child, tgid);
	struct pid *tp = BPF_CORE_READ(child, thread_pid);
	unsigned int level = BPF_CORE_READ(tp, level);
	r->child_nstid = BPF_CORE_READ(tp, numbers[level & 31].nr);
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_task_exit, struct task_struct *p, bool group_dead)
{
	u32 tid = BPF_CORE_READ(p, pid);
	u32 *ps = bpf_map_lookup_elem(&tracked, &tid);
	if (!ps)
		return 0;
	u32 slot = *ps;
	bpf_map_delete_elem(&listen_fd, &tid);
	bpf_map_delete_elem(&retry, &tid);
	bpf_map_delete_elem(&probe_kept, &tid);
	struct task_exit_rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		count_lost(slot);
	} else {
		fill_hdr(&r->h, REC_TASK_EXIT, 0, sizeof(*r), slot);
		r->h.tid = tid;
		r->h.tgid = BPF_CORE_READ(p, tgid);
		r->exit_code = BPF_CORE_READ(p, exit_code);
		r->group_dead = group_dead;
		// A process's end wakes the consumer: the standalone loader then sees its command gone
		// at once rather than at its next timer.
		bpf_ringbuf_submit(r, group_dead ? BPF_RB_FORCE_WAKEUP : wake_flags());
	}
	// Last, so a reader that sees the run's count reach 0 finds every record already submitted.
	bpf_map_delete_elem(&tracked, &tid);
	add_live(slot, -1);
	return 0;
}

SEC("tp_btf/signal_deliver")
int BPF_PROG(on_signal, int sig, struct kernel_siginfo *info, struct k_sigaction *ka)
{
	u32 slot = slot_of_current();
	if (!slot || sig <= 0 || sig >= 64 || !((RECORDED_SIGNAL_MASK >> sig) & 1))
		return 0;
	struct signal_rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		count_lost(slot);
		return 0;
	}
	fill_hdr(&r->h, REC_SIGNAL, 0, sizeof(*r), slot);
	r->sig = sig;
	r->code = BPF_CORE_READ(info, si_code);
	r->syscall = -1;
	r->arch = 0;
	if (sig == 31) {  // SIGSYS: which syscall the seccomp filter trapped
		r->syscall = BPF_CORE_READ(info, _sifields._sigsys._syscall);
		r->arch = BPF_CORE_READ(info, _sifields._sigsys._arch);
	}
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}
