// SPDX-License-Identifier: GPL-2.0
// osptrack-ebpf, the eBPF tracer's loader; a drop-in for osptrack's `strace ... -o LOG --` prefix.
//
//   osptrack-ebpf [-u USER] -o LOG -- COMMAND...              load, trace COMMAND, unload
//   osptrack-ebpf --serve SOCKET [--idle-exit S]               resident: load once, serve runs
//   osptrack-ebpf --server SOCKET [-u USER] -o LOG -- COMMAND  trace COMMAND through the resident one
//   osptrack-ebpf --check                                      can this kernel load it? (exit 0,
//                                                              "ok MAGIC": the log format it writes)
//
// COMMAND is forked (as USER) and waits on a pipe until its pid is in the kernel's `tracked`
// map with the run's slot: nothing it does is untraced. Records go to LOG until COMMAND and
// every traced descendant are gone; then a last record gives the records the kernel could not
// deliver. The client exits like COMMAND did (code, or the same signal). Loading and verifying
// the programs takes ~0.2 s, so osptrack keeps one resident tracer (--serve) per machine; a
// client starts in about a millisecond. The socket is root's only (mode 0600 in a 0700 folder).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "record.h"
#include "tracer.skel.h"


static volatile sig_atomic_t stop_now;

struct run {
	FILE *out;	 /* NULL: the slot is free */
	int client;	 /* the client's connection, -1 in standalone mode */
	int finishing; /* the command has ended: close once no traced task is left */
};
static struct run runs[MAX_RUNS];

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	const struct hdr *h = data;
	if (size >= sizeof(*h) && h->slot > 0 && h->slot < MAX_RUNS && runs[h->slot].out)
		fwrite(data, 1, size, runs[h->slot].out);
	return 0;
}

static void on_term(int sig)
{
	(void)sig;
	stop_now = 1;
}

struct entry {
	int nr;
	struct spec s;
};

// Argument layout of each traced syscall (x86_64); the list is osptrack.trace.strace's
// TRACED_SYSCALLS. -1: not present.
#define S(nr, p0, d0, p1, d1, fdp, a, al, sp) {nr, {1, p0, d0, p1, d1, fdp, a, al, sp, 0, {0}}}
#define P(nr, p0, d0) {nr, {1, p0, d0, -1, -1, -1, -1, -1, SP_NONE, 1, {0}}} /* a probe */
static const struct entry table[] = {
	S(SYS_open, 0, -1, -1, -1, -1, -1, -1, SP_OPEN),
	S(SYS_openat, 1, 0, -1, -1, -1, -1, -1, SP_OPEN),
	S(SYS_openat2, 1, 0, -1, -1, -1, -1, -1, SP_OPEN),
	S(SYS_creat, 0, -1, -1, -1, -1, -1, -1, SP_OPEN),
	S(SYS_unlink, 0, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_unlinkat, 1, 0, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_rmdir, 0, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_rename, 0, -1, 1, -1, -1, -1, -1, SP_NONE),
	S(SYS_renameat, 1, 0, 3, 2, -1, -1, -1, SP_NONE),
	S(SYS_renameat2, 1, 0, 3, 2, -1, -1, -1, SP_NONE),
	S(SYS_mkdir, 0, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_mkdirat, 1, 0, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_chmod, 0, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_fchmod, -1, -1, -1, -1, 0, -1, -1, SP_NONE),
	S(SYS_fchmodat, 1, 0, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_link, 0, -1, 1, -1, -1, -1, -1, SP_NONE),
	S(SYS_linkat, 1, 0, 3, 2, -1, -1, -1, SP_NONE),
	/* symlink's target (arg `addr`, read as is: it is relative to the link's folder); path 1 is the link. */
	S(SYS_symlink, -1, -1, 1, -1, -1, 0, -1, SP_SYMLINK),
	S(SYS_symlinkat, -1, -1, 2, 1, -1, 0, -1, SP_SYMLINK),
	S(SYS_truncate, 0, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_ftruncate, -1, -1, -1, -1, 0, -1, -1, SP_NONE),
	S(SYS_execve, 0, -1, -1, -1, -1, -1, -1, SP_EXEC),
	S(SYS_execveat, 1, 0, -1, -1, -1, -1, -1, SP_EXEC),
	S(SYS_clone, -1, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_clone3, -1, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_fork, -1, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_vfork, -1, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_kill, -1, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_tgkill, -1, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_tkill, -1, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_chdir, 0, -1, -1, -1, -1, -1, -1, SP_NONE),
	S(SYS_fchdir, -1, -1, -1, -1, 0, -1, -1, SP_NONE),
	S(SYS_connect, -1, -1, -1, -1, -1, 1, 2, SP_SOCKADDR),
	S(SYS_bind, -1, -1, -1, -1, -1, 1, 2, SP_SOCKADDR),
	S(SYS_sendto, -1, -1, -1, -1, -1, 4, 5, SP_SOCKADDR),
	S(SYS_sendmsg, -1, -1, -1, -1, -1, -1, -1, SP_SENDMSG),
	S(SYS_listen, -1, -1, -1, -1, -1, -1, -1, SP_LISTEN),
	P(SYS_stat, 0, -1),
	P(SYS_lstat, 0, -1),
	P(SYS_newfstatat, 1, 0),
	P(SYS_statx, 1, 0),
	P(SYS_access, 0, -1),
	P(SYS_faccessat, 1, 0),
	P(SYS_faccessat2, 1, 0),
	P(SYS_readlink, 0, -1),
	P(SYS_readlinkat, 1, 0),
};

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && !getenv("OSPTRACK_EBPF_VERBOSE")))
		return 0;
	return vfprintf(stderr, fmt, args);
}

static s64 boot_to_epoch(void)
{
	struct timespec rt, bt;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	return ((s64)rt.tv_sec - bt.tv_sec) * 1000000000LL + (rt.tv_nsec - bt.tv_nsec);
}

static void usage(void)
{
	fprintf(stderr, "usage: osptrack-ebpf [--server SOCKET] [-u USER] [--no-probes] [--ringbuf-bytes N] -o LOG -- COMMAND...\n"
			"       osptrack-ebpf --serve SOCKET [--idle-exit SECONDS]\n"
			"       osptrack-ebpf --check\n");
	exit(2);
}

static struct tracer_bpf *load(long ringbuf)
{
	libbpf_set_print(libbpf_quiet);
	struct tracer_bpf *skel = tracer_bpf__open();
	if (skel && ringbuf > 0 && bpf_map__set_max_entries(skel->maps.rb, ringbuf)) {
		fprintf(stderr, "osptrack-ebpf: bad --ringbuf-bytes (a power of 2, at least the page size)\n");
		exit(2);
	}
	if (skel && tracer_bpf__load(skel)) {
		tracer_bpf__destroy(skel);
		skel = NULL;
	}
	if (!skel) {
		fprintf(stderr, "osptrack-ebpf: cannot load the BPF programs: %s\n", strerror(errno));
		exit(70);
	}
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
		u32 nr = table[k].nr;
		if (nr < SPEC_SLOTS)
			bpf_map_update_elem(bpf_map__fd(skel->maps.specs), &nr, &table[k].s, BPF_ANY);
	}
	if (tracer_bpf__attach(skel)) {
		fprintf(stderr, "osptrack-ebpf: cannot attach the tracepoints: %s\n", strerror(errno));
		tracer_bpf__destroy(skel);
		exit(70);
	}
	return skel;
}

static u64 map_u64(int fd, u32 slot)
{
	u64 v = 0;
	bpf_map_lookup_elem(fd, &slot, &v);
	return v;
}

/* Starts following `pid` as run `slot`, writing to `out`; 0 on success. */
static int start_run(struct tracer_bpf *skel, u32 slot, pid_t pid, FILE *out, int client, int probes)
{
	u64 zero = 0, one = 1;
	u8 skip = !probes;
	bpf_map_update_elem(bpf_map__fd(skel->maps.no_probes), &slot, &skip, BPF_ANY);
	struct header_rec hr = {0};
	hr.h.size = sizeof(hr);
	hr.h.type = REC_HEADER;
	hr.h.slot = slot;
	hr.magic = LOG_MAGIC;
	hr.boot_to_epoch_ns = boot_to_epoch();
	hr.root_pid = pid;
	setvbuf(out, NULL, _IOFBF, 1 << 20);
	fwrite(&hr, 1, sizeof(hr), out);
	bpf_map_update_elem(bpf_map__fd(skel->maps.lost), &slot, &zero, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(skel->maps.live), &slot, &one, BPF_ANY);
	u32 tid = pid;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tracked), &tid, &slot, BPF_ANY))
		return -1;
	runs[slot].out = out;
	runs[slot].client = client;
	runs[slot].finishing = 0;
	return 0;
}

/* Closes run `slot` once none of its tasks is left; returns 1 when it did (lost count in *lost). */
static int try_finish(struct tracer_bpf *skel, struct ring_buffer *rb, u32 slot, u64 *lost)
{
	s64 alive = (s64)map_u64(bpf_map__fd(skel->maps.live), slot);
	if (alive > 0 && !stop_now)
		return 0;
	ring_buffer__consume(rb);
	struct lost_rec lr = {0};
	lr.h.size = sizeof(lr);
	lr.h.type = REC_LOST;
	lr.h.slot = slot;
	lr.lost = map_u64(bpf_map__fd(skel->maps.lost), slot);
	fwrite(&lr, 1, sizeof(lr), runs[slot].out);
	fclose(runs[slot].out);
	runs[slot].out = NULL;
	*lost = lr.lost;
	return 1;
}

/* Forks COMMAND, stopped on a pipe until `release` is called: returns the pid. */
static int go_pipe[2];
static pid_t spawn(char **cmd, struct passwd *pw)
{
	if (pipe2(go_pipe, O_CLOEXEC))
		exit(70);
	pid_t child = fork();
	if (child < 0)
		exit(70);
	if (child == 0) {
		char c;
		close(go_pipe[1]);
		if (read(go_pipe[0], &c, 1) != 1)
			_exit(127); /* the tracer is gone: never run untraced */
		if (pw && (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid)))
			_exit(126);
		execvp(cmd[0], cmd);
		_exit(127);
	}
	close(go_pipe[0]);
	return child;
}

static void release(void)
{
	if (write(go_pipe[1], "g", 1) != 1)
		exit(70);
	close(go_pipe[1]);
}

static int exit_like(int status)
{
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		kill(getpid(), WTERMSIG(status));
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 70;
}

static void on_signals(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* ------------------------------------------------------------------ resident mode */

struct msg {
	u8 op; /* 'T' trace pid (log fd attached), 'D' command done; replies 'O' ok, 'F' finished, 'E' error */
	u8 probes; /* 'T': trace the stat/access/readlink probes */
	u8 pad[2];
	u32 pid;
	u64 magic; /* LOG_MAGIC: a client and a server of different builds refuse each other */
	u64 value; /* 'F': lost records */
};

static int send_msg(int sock, const struct msg *m, int fd)
{
	struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -1;
}

static int recv_msg(int sock, struct msg *m, int *fd)
{
	struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	if (fd)
		*fd = -1;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n != (ssize_t)sizeof(*m))
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int got;
			memcpy(&got, CMSG_DATA(c), sizeof(int));
			if (fd)
				*fd = got;
			else
				close(got);
		}
	return 0;
}

static int serve(const char *path, long idle_s)
{
	struct tracer_bpf *skel = load(0);
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.rb), on_record, NULL, NULL);
	int lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!rb || lsock < 0 || strlen(path) >= sizeof(sa.sun_path))
		return 70;
	strcpy(sa.sun_path, path);
	unlink(path);
	mode_t old = umask(0177);
	if (bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsock, 64)) {
		fprintf(stderr, "osptrack-ebpf: %s: %s\n", path, strerror(errno));
		return 70;
	}
	umask(old);
	on_signals();
	for (int s = 0; s < MAX_RUNS; s++)
		runs[s].client = -1;
	time_t idle_since = time(NULL);
	while (!stop_now) {
		struct pollfd fds[MAX_RUNS + 2];
		int slot_of[MAX_RUNS + 2];
		int n = 0, finishing = 0, active = 0;
		fds[n].fd = ring_buffer__epoll_fd(rb), fds[n].events = POLLIN, slot_of[n++] = -1;
		fds[n].fd = lsock, fds[n].events = POLLIN, slot_of[n++] = -1;
		for (int s = 1; s < MAX_RUNS; s++) {
			if (runs[s].client >= 0)
				fds[n].fd = runs[s].client, fds[n].events = POLLIN, slot_of[n++] = s;
			if (runs[s].out) {
				active++;
				finishing |= runs[s].finishing;
			}
		}
		/* Records wake this loop only in bulk (tracer.bpf.c wake_flags): the timeout drains a
		 * trickle, and a run's end comes as its client's message, after which all is consumed. */
		poll(fds, n, finishing ? 10 : 500);
		ring_buffer__consume(rb);
		if (fds[1].revents & POLLIN) {
			int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
			struct msg m, reply = {.op = 'E', .magic = LOG_MAGIC};
			int logfd = -1, slot = 0;
			struct ucred cred;
			socklen_t cl = sizeof(cred);
			/* Only root's clients: the socket's mode says so too. */
			if (c >= 0 && !getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) && cred.uid == 0 &&
			    !recv_msg(c, &m, &logfd) && m.op == 'T' && m.magic == LOG_MAGIC && logfd >= 0) {
				for (int s = 1; s < MAX_RUNS && !slot; s++)
					if (!runs[s].out && runs[s].client < 0)
						slot = s;
				FILE *out = slot ? fdopen(logfd, "wb") : NULL;
				if (out && !start_run(skel, slot, m.pid, out, c, m.probes)) {
					reply.op = 'O';
					logfd = -1;
				} else if (out) {
					fclose(out);
					runs[slot].out = NULL;
					logfd = -1;
				}
			}
			if (logfd >= 0)
				close(logfd);
			if (c >= 0) {
				send_msg(c, &reply, -1);
				if (reply.op != 'O')
					close(c);
			}
		}
		for (int i = 2; i < n; i++) {
			int s = slot_of[i];
			if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct msg m;
			/* 'D', or the client is gone (killed): either way the run ends once its tasks do. */
			if (recv_msg(runs[s].client, &m, NULL) || m.op == 'D')
				runs[s].finishing = 1;
			if (fds[i].revents & (POLLHUP | POLLERR))
				runs[s].finishing = 1;
		}
		for (int s = 1; s < MAX_RUNS; s++) {
			u64 lost;
			if (runs[s].out && runs[s].finishing && try_finish(skel, rb, s, &lost)) {
				struct msg reply = {.op = 'F', .magic = LOG_MAGIC, .value = lost};
				send_msg(runs[s].client, &reply, -1);
				close(runs[s].client);
				runs[s].client = -1;
			}
		}
		if (active)
			idle_since = time(NULL);
		else if (idle_s > 0 && time(NULL) - idle_since > idle_s)
			break;
	}
	unlink(path);
	ring_buffer__free(rb);
	tracer_bpf__destroy(skel);
	return 0;
}

static int client(const char *path, const char *log_path, struct passwd *pw, char **cmd, int probes)
{
	int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (sock < 0 || strlen(path) >= sizeof(sa.sun_path))
		return 70;
	strcpy(sa.sun_path, path);
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "osptrack-ebpf: no resident tracer at %s: %s\n", path, strerror(errno));
		return 70;
	}
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "osptrack-ebpf: %s: %s\n", log_path, strerror(errno));
		return 2;
	}
	pid_t child = spawn(cmd, pw);
	struct msg m = {.op = 'T', .probes = probes, .pid = child, .magic = LOG_MAGIC}, reply;
	if (send_msg(sock, &m, fd) || recv_msg(sock, &reply, NULL) || reply.op != 'O') {
		fprintf(stderr, "osptrack-ebpf: the resident tracer refused the run\n");
		kill(child, SIGKILL);
		return 70;
	}
	close(fd);
	release();
	on_signals();
	int status = 0;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		if (stop_now)
			kill(child, SIGKILL);
	struct msg done = {.op = 'D', .magic = LOG_MAGIC};
	send_msg(sock, &done, -1);
	/* The server answers once every traced task is gone and the log is complete. */
	int r;
	do {
		errno = 0;
		r = recv_msg(sock, &reply, NULL);
	} while (r && errno == EINTR);
	return exit_like(status);
}

/* ------------------------------------------------------------------ standalone mode */

static int standalone(const char *log_path, struct passwd *pw, char **cmd, long ringbuf, int probes)
{
	struct tracer_bpf *skel = load(ringbuf);
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *out = fd >= 0 ? fdopen(fd, "wb") : NULL;
	if (!out) {
		fprintf(stderr, "osptrack-ebpf: %s: %s\n", log_path, strerror(errno));
		return 2;
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.rb), on_record, NULL, NULL);
	pid_t child = spawn(cmd, pw);
	if (!rb || start_run(skel, 1, child, out, -1, probes)) {
		kill(child, SIGKILL);
		return 70;
	}
	release();
	on_signals();
	int status = 0, done = 0;
	u64 lost;
	for (;;) {
		ring_buffer__poll(rb, 20);
		if (!done && waitpid(child, &status, WNOHANG) == child)
			done = 1;
		if (stop_now && !done)
			kill(child, SIGKILL);
		/* Like strace -f: go on while any traced task lives (a daemon that outlived the command
		 * is the runner's to kill, at the timeout). */
		if (done && try_finish(skel, rb, 1, &lost))
			break;
	}
	ring_buffer__free(rb);
	tracer_bpf__destroy(skel);
	return exit_like(status);
}

int main(int argc, char **argv)
{
	const char *log_path = NULL, *user = NULL, *serve_path = NULL, *server_path = NULL;
	long ringbuf = 0; /* --ringbuf-bytes: a smaller buffer, so tests can make it overflow */
	long idle_s = 0;
	int check = 0, probes = 1, i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			log_path = argv[++i];
		else if (!strcmp(argv[i], "-u") && i + 1 < argc)
			user = argv[++i];
		else if (!strcmp(argv[i], "--ringbuf-bytes") && i + 1 < argc)
			ringbuf = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--serve") && i + 1 < argc)
			serve_path = argv[++i];
		else if (!strcmp(argv[i], "--server") && i + 1 < argc)
			server_path = argv[++i];
		else if (!strcmp(argv[i], "--idle-exit") && i + 1 < argc)
			idle_s = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--check"))
			check = 1;
		else if (!strcmp(argv[i], "--no-probes"))
			probes = 0;
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else
			usage();
	}
	if (check) {
		tracer_bpf__destroy(load(0));
		printf("ok %llx\n", (unsigned long long)LOG_MAGIC); /* the log format this build writes */
		return 0;
	}
	if (serve_path)
		return serve(serve_path, idle_s);
	if (!log_path || i >= argc)
		usage();
	struct passwd *pw = NULL;
	if (user && !(pw = getpwnam(user))) {
		fprintf(stderr, "osptrack-ebpf: unknown user %s\n", user);
		return 2;
	}
	if (server_path)
		return client(server_path, log_path, pw, argv + i, probes);
	return standalone(log_path, pw, argv + i, ringbuf, probes);
}
