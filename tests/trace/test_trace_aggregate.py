"""events -> package-analysis phase object, including the package-analysis faults we fix."""

from __future__ import annotations

import base64

from osptrack.trace.aggregate import dns_section, phase_record
from osptrack.trace.strace import parse_log

ENV = '["HOME=/root", "K=V"]'


def record(log: str, **kw):
    events = list(parse_log(log.strip("\n").split("\n"), "install"))
    return phase_record(events, kw.pop("stdout", b""), kw.pop("stderr", b""), "completed", **kw)


def files_of(rec) -> dict[str, tuple[bool, bool, bool]]:
    return {f["Path"]: (f["Read"], f["Write"], f["Delete"]) for f in rec["Files"]}


def test_files_read_write_delete_and_package_analysis_faults():
    rec = record(
        """
100  1.0 openat(AT_FDCWD</w>, "/etc/passwd", O_RDONLY) = 3</etc/passwd>
100  1.1 openat(AT_FDCWD</w>, "/root/.ssh/id_rsa", O_RDONLY) = -1 ENOENT (No such file or directory)
100  1.2 openat(AT_FDCWD</w>, "/w/out", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3</w/out>
100  1.3 openat(AT_FDCWD</w>, "/w/db", O_RDWR) = 3</w/db>
100  1.4 unlink("/w/out") = 0
100  1.5 openat(AT_FDCWD</w>, "/proc/self/fd/8", O_RDONLY) = 11<pipe:[9864]>
100  1.6 openat(AT_FDCWD</w>, "/proc/self/fd/9", O_RDONLY) = 11<socket:[9865]>
100  1.7 openat(AT_FDCWD</w>, "/usr/lib", O_RDONLY|O_DIRECTORY) = 4</usr/lib>
100  1.8 rename("/w/a", "/w/b") = 0
100  1.9 symlink("/etc/shadow", "/w/ln") = 0
100  2.0 unlink("/w/never") = -1 ENOENT (No such file or directory)
100  2.1 mkdir("/w/tmpd", 0700) = 0
100  2.2 openat(AT_FDCWD</w>, "/w/tmpd", O_RDONLY|O_CLOEXEC) = 3</w/tmpd>
100  2.3 rmdir("/w/tmpd") = 0
100  2.4 chmod("/w/run.sh", 0755) = 0
100  2.5 openat(AT_FDCWD</w>, "/w/blocked", O_RDONLY <unfinished ...>
"""
    )
    assert files_of(rec) == {
        "/etc/passwd": (True, False, False),
        "/w/out": (False, True, True),
        "/w/db": (True, True, False),  # O_RDWR is both
        "/w/a": (False, False, True),
        "/w/b": (False, True, False),
        "/w/ln": (False, True, False),
        "/w/tmpd": (False, True, True),  # mkdir'd: the plain read-open of it is no Read
        "/w/run.sh": (False, True, False),
    }
    paths = [f["Path"] for f in rec["Files"]]
    assert paths == sorted(paths)  # stable order: by path


def test_commands_keep_failed_execs_deduplicated_in_order_and_only_run_programs_are_read():
    rec = record(
        f"""
100  1.0 execve("/usr/bin/bwrap", ["bwrap", "--unshare-all"], {ENV}) = 0
100  1.1 clone(child_stack=NULL, flags=SIGCHLD) = 2 /* 101 in strace's PID NS */
101  1.2 openat(AT_FDCWD</>, "/newroot/etc", O_RDONLY|O_CLOEXEC) = 5</newroot/etc>
101  1.3 execve("/usr/bin/python3", ["python3", "setup.py", "install"], {ENV}) = 0
101  1.4 execve("/usr/local/bin/curl", ["curl", "evil"], {ENV}) = -1 ENOENT (No such file or directory)
101  1.5 clone(child_stack=NULL, flags=SIGCHLD) = 3 /* 102 in strace's PID NS */
102  1.6 execve("/bin/sh", ["sh", "-c", "id"], {ENV}) = 0
101  1.7 clone(child_stack=NULL, flags=SIGCHLD) = 4 /* 103 in strace's PID NS */
103  1.8 execve("/bin/sh", ["sh", "-c", "id"], {ENV}) = 0
"""
    )
    # package-analysis keeps a failed execve (curl was not there, but the package tried it).
    assert rec["Commands"] == [
        {"Command": ["python3", "setup.py", "install"], "Environment": ["HOME=/root", "K=V"]},
        {"Command": ["curl", "evil"], "Environment": ["HOME=/root", "K=V"]},
        {"Command": ["sh", "-c", "id"], "Environment": ["HOME=/root", "K=V"]},
    ]
    files = files_of(rec)
    assert files["/usr/bin/python3"] == (True, False, False) and files["/bin/sh"][0]
    assert "/newroot/etc" not in files and "/usr/local/bin/curl" not in files  # bwrap setup, failed exec
    assert "/usr/bin/bwrap" not in files


def test_sockets_dedup_sorted_ignore_resolver_and_hostnames():
    rec = record(
        """
100  1.0 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("198.18.0.2")}, 16) = -1 EINPROGRESS (Operation now in progress)
100  1.1 connect(4<TCP:[2]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("198.18.0.2")}, 16) = 0
100  1.2 sendto(5<UDP:[3]>, "q", 1, 0, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.53")}, 16) = 1
100  1.3 connect(6<TCP:[4]>, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("198.18.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)
100  1.4 sendto(7<UDPv6:[5]>, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(9999), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = 1
100  1.5 connect(8<UNIX-STREAM:[6]>, {sa_family=AF_UNIX, sun_path="/run/x.sock"}, 14) = 0
100  1.6 bind(9<TCP:[7]>, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("0.0.0.0")}, 16) = 0
100  1.7 listen(9<TCP:[0.0.0.0:8080]>, 5) = 0
100  1.8 bind(10<TCP:[8]>, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
100  1.9 listen(10<TCP:[127.0.0.1:41234]>, 1) = 0
100  2.0 bind(11<TCP:[9]>, {sa_family=AF_INET, sin_port=htons(22), sin_addr=inet_addr("0.0.0.0")}, 16) = -1 EACCES (Permission denied)
""",
        ignore_sockets={("10.0.0.53", 53)},
        ip_names={"198.18.0.2": ["evil.example.com", "c2.example.com", "evil.example.com"]},
    )
    # bind and listen are kept, as package-analysis keeps them: a listening backdoor shows, with
    # the port an ephemeral bind got; a bind that failed held no address.
    assert rec["Sockets"] == [
        {"Address": "0.0.0.0", "Port": 8080, "Hostnames": []},
        {"Address": "127.0.0.1", "Port": 0, "Hostnames": []},
        {"Address": "127.0.0.1", "Port": 41234, "Hostnames": []},
        {"Address": "198.18.0.1", "Port": 80, "Hostnames": []},
        {"Address": "198.18.0.2", "Port": 443, "Hostnames": ["c2.example.com", "evil.example.com"]},
        {"Address": "2001:db8::1", "Port": 9999, "Hostnames": []},
    ]


def test_dns_grouped_sorted_and_normalised():
    records = [
        {"kind": "dns", "qname": "Zeta.example.", "qtype": "AAAA"},
        {"kind": "tcp", "dst": "198.18.0.1", "dst_port": 443},
        {"kind": "dns", "qname": "alpha.example", "qtype": "A"},
        {"kind": "dns", "qname": "zeta.example", "qtype": "A"},
        {"kind": "dns", "qname": "zeta.example", "qtype": "A"},
    ]
    expected = [
        {
            "Class": "IN",
            "Queries": [
                {"Hostname": "alpha.example", "Types": ["A"]},
                {"Hostname": "zeta.example", "Types": ["A", "AAAA"]},
            ],
        }
    ]
    assert dns_section(records) == expected
    assert dns_section(list(reversed(records))) == expected  # order of arrival does not matter
    assert dns_section([]) == []


def test_status_and_output_tails():
    out = b"x" * 5000 + b"END"
    rec = phase_record([], out, b"err", "error_timeout", [])
    assert rec["Status"] == "error_timeout"
    stdout = base64.b64decode(rec["Stdout"])
    assert len(stdout) == 4096 and stdout.endswith(b"END") and stdout == out[-4096:]
    assert base64.b64decode(rec["Stderr"]) == b"err"
    assert set(rec) == {"Status", "Stdout", "Stderr", "Files", "Sockets", "Commands", "DNS"}
    assert rec["Files"] == rec["Sockets"] == rec["Commands"] == rec["DNS"] == []
