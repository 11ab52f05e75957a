"""Probes of sensitive paths and listen() in the strace parser (issue 12)."""

from __future__ import annotations

from pathlib import Path

from osptrack.trace.sensitive import category
from osptrack.trace.strace import TRACED_SYSCALLS, ParseStats, parse_log, strace_command

ENOENT = "-1 ENOENT (No such file or directory)"


def _events(lines: list[str]) -> tuple[list, ParseStats]:
    stats = ParseStats()
    head = ['100 1.0 execve("/usr/bin/python3", ["python3"], 0x7ffd /* 3 vars */) = 0']
    return list(parse_log(head + lines, "install", stats=stats))[1:], stats


def test_the_command_traces_probes_and_listen() -> None:
    trace = next(a for a in strace_command(Path("/x")) if a.startswith("trace="))
    for name in ("newfstatat", "statx", "faccessat", "faccessat2", "readlinkat", "listen", "bind"):
        assert name in TRACED_SYSCALLS and name in trace.split("=", 1)[1].replace("?", "").split(",")


def test_probes_of_sensitive_paths_are_events_even_when_absent() -> None:
    events, stats = _events(
        [
            f'100 1.1 newfstatat(AT_FDCWD</root>, "/etc/shadow", 0x7ffd, 0) = {ENOENT}',
            '100 1.2 newfstatat(AT_FDCWD</root>, ".ssh", {st_mode=S_IFDIR|0700, st_size=60, ...}, 0) = 0',
            '100 1.3 newfstatat(AT_FDCWD</root>, "/usr/lib", {st_mode=S_IFDIR|0755, ...}, 0) = 0',
            '100 1.4 access("/root/.aws/credentials", R_OK) = 0',
            f'100 1.5 readlink("/home/eve/.config/google-chrome/SingletonLock", 0x7ff, 4096) = {ENOENT}',
            f'100 1.6 statx(AT_FDCWD</root>, "/root/.bitcoin/wallet.dat", AT_STATX_SYNC_AS_STAT, STATX_ALL, 0x7f) = {ENOENT}',
            f'100 1.7 openat(AT_FDCWD</root>, "/root/.ethereum/keystore", O_RDONLY|O_CLOEXEC) = {ENOENT}',
            '100 1.8 newfstatat(3</root/.ssh/id_rsa>, "", {st_mode=S_IFREG|0600, ...}, AT_EMPTY_PATH) = 0',
            '100 1.9 newfstatat(AT_FDCWD</root>, "/etc/sudoers", <unfinished ...>',
            f"100 2.0 <... newfstatat resumed>0x7ffd, 0) = {ENOENT}",
        ]
    )
    got = [(e.op, e.path, e.errno, e.probe) for e in events]
    assert got == [
        ("stat", "/etc/shadow", "ENOENT", "system_accounts"),
        ("stat", "/root/.ssh", None, "ssh"),  # relative to the cwd annotation
        ("access", "/root/.aws/credentials", None, "cloud"),
        ("readlink", "/home/eve/.config/google-chrome/SingletonLock", "ENOENT", "browser"),
        ("stat", "/root/.bitcoin/wallet.dat", "ENOENT", "wallet"),
        ("read", "/root/.ethereum/keystore", "ENOENT", "wallet"),  # a failed open is a probe, not a read
        ("stat", "/etc/sudoers", "ENOENT", "system_accounts"),
    ]
    assert stats.dropped == 0 and stats.ignored >= 2  # /usr/lib and the fd stat: no events


def test_listen_reports_the_address_the_socket_holds() -> None:
    events, _ = _events(
        [
            "100 1.1 listen(3<TCP:[127.0.0.1:44107]>, 1) = 0",
            "100 1.2 listen(4<TCPv6:[[::]:8080]>, 5) = 0",
            "100 1.3 listen(5<UNIX-STREAM:[999]>, 5) = 0",
        ]
    )
    assert [(e.op, e.family, e.address, e.port) for e in events] == [
        ("listen", "AF_INET", "127.0.0.1", 44107),
        ("listen", "AF_INET6", "::", 8080),
        ("listen", "AF_UNIX", None, None),
    ]


def test_sensitive_table_covers_folders_and_exact_files() -> None:
    assert category("/root/.ssh") == category("/root/.ssh/id_rsa") == "ssh"
    assert category("/root/.sshx") is None and category("/etc/shadowx") is None
    assert category("/home/bob/.aws/credentials") == "cloud"


def test_an_fstat_of_a_deleted_files_fd_is_ignored_not_dropped() -> None:
    # The persona's init fstat()s the command file it was handed, already unlinked.
    events, stats = _events(
        [
            '100 1.1 newfstatat(18</var/tmp/osptrack-work/run-x/#1508655>(deleted), "", {st_mode=S_IFREG|0600,'
            " st_size=166, ...}, AT_EMPTY_PATH) = 0",
        ]
    )
    assert (stats.dropped, stats.ignored, events) == (0, 1, [])
