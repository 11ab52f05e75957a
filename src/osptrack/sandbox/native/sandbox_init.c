/* pid 1 of the sandbox: the C twin of ecosystems/harness/_sandbox_init.py, with the same
 * behaviour, without an interpreter's start-up in every phase (about 15-25 ms of CPU per phase:
 * python3 -I -S and ctypes; this one takes about 1 ms).
 *
 * Started by bwrap (--as-pid-1) as `_sandbox_init FD`; FD holds the command's arguments, each
 * ending in a NUL byte. Before anything of the package runs it rewrites its own argv memory so
 * /proc/1/cmdline reads `/sbin/init` (a non-NUL last byte makes the kernel stop at the first
 * NUL), names itself `systemd` (/proc/1/comm), zeroes its environ memory and turns non-dumpable,
 * so /proc/1/environ, /proc/1/exe and /proc/1/maps are closed to the package as a root-owned
 * init's are to a user. The command is looked up on PATH as Python's os.execvpe does (no /bin/sh
 * fallback for a file without a #!). It ends when the command ends (the kernel then kills
 * whatever else is left in the pid namespace), with the command's exit status (128 + signal).
 *
 * Unlike the Python init, the command inherits default signal dispositions: CPython ignores
 * SIGPIPE and SIGXFSZ at start-up and os.execvpe kept them ignored; a login shell, and the bare
 * side of benchmarks/overhead.py (subprocess restores them), have them at their defaults.
 * The environment is the Python init's too: CPython's locale coercion (PEP 538) adds
 * LC_CTYPE=C.UTF-8 (at the end) when LC_ALL is unset and the locale the environment names does
 * not load, and the Python init handed that on to every command; coerce_locale() does the same.
 * While the sandbox lacked the persona's en_US.UTF-8, every command got it, and without it npm's
 * installs measured 0.35-0.95 s slower. Now sandbox/locales.py compiles the persona's locales
 * into the sandbox, so it loads and nothing is added, as in a workstation's terminal.
 *
 * Built by scripts/setup.sh (static, so its exec loads no shared library in the sandbox). */
#define _GNU_SOURCE
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char TITLE[] = "/sbin/init"; /* with its NUL: 11 bytes */

static char *read_all(int fd, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) return NULL;
        if (n == cap) buf = realloc(buf, cap *= 2);
        if (!buf) return NULL;
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return NULL;
        if (got == 0) break;
        n += (size_t)got;
    }
    *len = n;
    return buf;
}

/* The environment as fresh copies, so the original strings can be zeroed. */
static char **copy_environ(void) {
    size_t n = 0;
    while (environ[n]) n++;
    char **copy = calloc(n + 1, sizeof(char *));
    if (!copy) return NULL;
    for (size_t i = 0; i < n; i++)
        if (!(copy[i] = strdup(environ[i]))) return NULL;
    return copy;
}

static void disguise(int argc, char **argv, char **old_env) {
    char *arg_start = argv[0];
    char *arg_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
    size_t size = (size_t)(arg_end - arg_start);
    if (size > sizeof(TITLE)) {
        memcpy(arg_start, TITLE, sizeof(TITLE));
        memset(arg_start + sizeof(TITLE), 'x', size - sizeof(TITLE));
    }
    if (old_env[0]) {
        size_t n = 0;
        while (old_env[n]) n++;
        char *env_start = old_env[0];
        char *env_end = old_env[n - 1] + strlen(old_env[n - 1]) + 1;
        memset(env_start, 0, (size_t)(env_end - env_start));
    }
    prctl(PR_SET_NAME, "systemd", 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* PEP 538 as CPython applies it at start-up: a C/POSIX LC_CTYPE (or one that does not load),
 * LC_ALL unset, and C.UTF-8 available: LC_CTYPE=C.UTF-8 in the environment. */
static void coerce_locale(void) {
    const char *all = getenv("LC_ALL");
    if (all && *all) return;
    const char *ctype = setlocale(LC_CTYPE, "");
    if (ctype && strcmp(ctype, "C") != 0 && strcmp(ctype, "POSIX") != 0) return;
    static const char *targets[] = {"C.UTF-8", "C.utf8", "UTF-8"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        if (setlocale(LC_CTYPE, targets[i])) {
            setenv("LC_CTYPE", targets[i], 1);
            break;
        }
    }
    setlocale(LC_CTYPE, "C");
}

/* os.execvpe: a name with a slash is run as is; else each PATH entry in turn (os.defpath when
 * PATH is unset); the error reported is the first that is not ENOENT/ENOTDIR, else the last. */
static int exec_path(char **argv, char **env) {
    const char *file = argv[0];
    if (strchr(file, '/')) {
        execve(file, argv, env);
        return errno;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/bin:/usr/bin";
    int saved = 0, last = ENOENT;
    const char *p = path;
    for (;;) {
        const char *end = strchrnul(p, ':');
        size_t dlen = (size_t)(end - p);
        size_t flen = strlen(file);
        char *full = malloc(dlen + flen + 2);
        if (!full) return ENOMEM;
        if (dlen) {
            memcpy(full, p, dlen);
            full[dlen] = '/';
            memcpy(full + dlen + 1, file, flen + 1);
        } else {
            memcpy(full, file, flen + 1); /* an empty entry: os.path.join("", file) */
        }
        execve(full, argv, env);
        last = errno;
        if (last != ENOENT && last != ENOTDIR && !saved) saved = last;
        free(full);
        if (!*end) break;
        p = end + 1;
    }
    return saved ? saved : last;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int fd = atoi(argv[1]);
    size_t len = 0;
    char *buf = read_all(fd, &len);
    close(fd);
    if (!buf) return 1;
    size_t nargs = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0') nargs++;
    if (nargs == 0) return 1;
    char **cmd = calloc(nargs + 1, sizeof(char *));
    if (!cmd) return 1;
    for (size_t i = 0, k = 0, start = 0; i < len && k < nargs; i++)
        if (buf[i] == '\0') {
            cmd[k++] = buf + start;
            start = i + 1;
        }
    char **old_env = environ;
    char **env = copy_environ();
    if (!env) return 1;
    environ = env; /* getenv("PATH") below reads the copies */
    coerce_locale();
    env = environ; /* setenv may have grown it */
    disguise(argc, argv, old_env);
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        int err = exec_path(cmd, env);
        dprintf(2, "%s: %s\n", cmd[0], strerror(err));
        _exit(127);
    }
    for (;;) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        if (pid == child) {
            if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
            _exit(128 + WTERMSIG(status));
        }
    }
}
