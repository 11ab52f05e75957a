/* The phase launcher: what sandbox/runner.py's preexec_fn did between fork and exec, as its own
 * small program, so the analysing process spawns each phase with vfork+exec (a preexec_fn
 * forces a full fork of a large, threaded Python process: tens of milliseconds per phase).
 *
 *   osptrack-launch PARENT_PID NETNS_FD FSIZE CGROUP_FDS -- TRACER ARGS...
 *
 * In order: the parent-death signal (SIGKILL; it survives the execs, so the tracer dies with
 * osptrack and bwrap's --die-with-parent ends the sandbox), a check that the parent is still
 * PARENT_PID, setns(NETNS_FD, CLONE_NEWNET) unless it is -1, "0" written to each cgroup.procs
 * fd of CGROUP_FDS (comma-separated, or "-" for none) so the tracer and all it starts are in
 * the run's cgroups, RLIMIT_FSIZE = FSIZE (soft and hard) and RLIMIT_CORE = 0, the fds closed,
 * then execvp of the tracer. Any failure ends it with status 125 and a line on stderr before
 * anything of the phase runs: the sandbox never starts outside its namespace or limits. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static void fail(const char *what) {
    dprintf(2, "osptrack-launch: %s: %s\n", what, strerror(errno));
    _exit(125);
}

static long number(const char *text, const char *what) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || *end || end == text) {
        errno = EINVAL;
        fail(what);
    }
    return value;
}

int main(int argc, char **argv) {
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        dprintf(2, "usage: osptrack-launch PARENT_PID NETNS_FD FSIZE CGROUP_FDS -- TRACER ARGS...\n");
        return 125;
    }
    long parent = number(argv[1], "parent pid");
    long netns = number(argv[2], "netns fd");
    long fsize = number(argv[3], "file size limit");
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("PR_SET_PDEATHSIG");
    if (getppid() != (pid_t)parent) _exit(1); /* the parent died before the signal was armed */
    if (netns >= 0) {
        if (setns((int)netns, CLONE_NEWNET) != 0) fail("setns");
        close((int)netns);
    }
    if (strcmp(argv[4], "-") != 0) {
        char *fds = argv[4];
        for (char *tok = strtok(fds, ","); tok; tok = strtok(NULL, ",")) {
            int fd = (int)number(tok, "cgroup fd");
            if (write(fd, "0", 1) != 1) fail("cgroup.procs");
            close(fd);
        }
    }
    struct rlimit fs = {(rlim_t)fsize, (rlim_t)fsize}, core = {0, 0};
    if (setrlimit(RLIMIT_FSIZE, &fs) != 0) fail("RLIMIT_FSIZE");
    if (setrlimit(RLIMIT_CORE, &core) != 0) fail("RLIMIT_CORE");
    execvp(argv[6], argv + 6);
    dprintf(2, "%s: %s\n", argv[6], strerror(errno));
    _exit(127);
}
