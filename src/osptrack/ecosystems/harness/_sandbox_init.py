"""pid 1 of the sandbox: looks like a workstation's init, runs the phase's command, reaps orphans.

Started by bwrap (--as-pid-1) as `python3 -I -S _sandbox_init.py FD`; FD holds the command's
arguments, each ending in a NUL byte. It imports nothing beyond ctypes: each module costs a few
hundred traced syscalls per phase. Before anything of the package runs it rewrites its own argv memory so /proc/1/cmdline
reads `/sbin/init` (the kernel's setproctitle rule: a non-NUL last byte makes it stop at the
first NUL), names itself `systemd` (/proc/1/comm), zeroes its environ memory and turns
non-dumpable, so /proc/1/environ, /proc/1/exe and /proc/1/maps are closed to the package as a
root-owned init's are to a user. It ends when the command ends (then the kernel kills whatever
else is left in the pid namespace, as bwrap's own reaper did), with the command's exit status.
"""

import ctypes
import os
import sys

PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
TITLE = b"/sbin/init\0"


def _disguise(libc):
    stat = open("/proc/self/stat").read()  # noqa: SIM115 - closed at exit; nothing else is opened
    fields = stat[stat.rindex(")") + 2 :].split()
    arg_start, arg_end, env_start, env_end = (int(x) for x in fields[45:49])
    size = arg_end - arg_start
    if size > len(TITLE):
        ctypes.memmove(arg_start, TITLE + b"x" * (size - len(TITLE)), size)
    ctypes.memset(env_start, 0, env_end - env_start)
    libc.prctl(PR_SET_NAME, b"systemd", 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def main():
    with os.fdopen(int(sys.argv[1]), "rb") as fh:
        argv = [os.fsdecode(arg) for arg in fh.read().split(b"\0")[:-1]]
    env = dict(os.environ)
    _disguise(ctypes.CDLL(None, use_errno=True))
    child = os.fork()
    if child == 0:
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"{argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


main()
