"""Where the server listens, what it is keyed on, and the framing of its messages.

Imported by the console script's client, so it uses the C modules (`_socket`, `marshal`,
`_sha256`) and not their Python wrappers: `socket` and `signal` build IntEnums of every constant
at import, 10-20 ms on this machine, more than everything else the client does.

One message is one SOCK_SEQPACKET datagram: a marshal'ed dict, with any file descriptors as
SCM_RIGHTS. marshal is not safe against crafted input; both ends have checked that the other is
root (the socket lives in a 0700 root folder, and the server checks SO_PEERCRED), so no one
else can write to either end.
"""

from __future__ import annotations

import _socket
import marshal
import os
import sys

FORMAT = 1
MAX_MESSAGE = 1 << 20  # the environment travels in the request
MAX_FDS = 8
_INT = 4  # sizeof(int): SCM_RIGHTS carries C ints
DEFAULT_DIR = "/run/osptrack"  # the resident eBPF tracer's folder: root's only, gone at reboot
IDLE_EXIT_S = 600  # as the eBPF tracer's
# Read by the interpreter at start, or by a preloaded module at import (OpenSSL reads its
# configuration when cryptography loads it): a client whose values differ needs another server
# (the rest of the environment is the child's, replaced per request).
KEY_ENV_PREFIXES = ("PYTHON", "LC_", "LANG", "OSPTRACK_EBPF_RUN_DIR", "OPENSSL_")
NAMESPACES = ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup")


def run_dir() -> str:
    return os.environ.get("OSPTRACK_SERVER_DIR") or DEFAULT_DIR


def package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def namespaces(pid: str = "self") -> list[str]:
    out = []
    for ns in NAMESPACES:
        try:
            out.append(os.readlink(f"/proc/{pid}/ns/{ns}"))
        except OSError:
            out.append("")
    return out


def _cgroup() -> str:
    try:
        with open("/proc/self/cgroup") as f:
            return f.read()
    except OSError:
        return ""


def key_material() -> dict[str, object]:
    """What a server must share with the client for its child to be the process a direct run
    would be: the interpreter and its start-up state, the source tree, the namespaces and the
    cgroup the run would have started in."""
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(KEY_ENV_PREFIXES))
    return {
        "format": FORMAT,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "path": list(sys.path[1:]),  # [0] is the script's folder: the package comes from the rest
        "flags": tuple(sys.flags),
        "xoptions": sorted(sys._xoptions.items()),
        "package": package_dir(),
        "env": env,
        "uid": os.geteuid(),
        "ns": namespaces(),
        "cgroup": _cgroup(),
    }


def socket_path(key: dict[str, object]) -> str:
    try:
        from _sha256 import sha256  # the C module: hashlib would load OpenSSL
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import sha256
    tag = sha256(marshal.dumps(sorted(key.items()))).hexdigest()[:12]
    return os.path.join(run_dir(), f"analyze-{tag}.sock")


def new_socket() -> _socket.socket:
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)


def send(sock: _socket.socket, message: dict[str, object], fds: list[int] | tuple[int, ...] = ()) -> None:
    data = marshal.dumps(message)
    if len(data) > MAX_MESSAGE:
        raise OSError("message too large")
    ancillary = []
    if fds:
        packed = b"".join(fd.to_bytes(_INT, sys.byteorder, signed=True) for fd in fds)
        ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, packed)]
    sent = sock.sendmsg([data], ancillary)
    if sent != len(data):
        raise OSError("short send")


def recv(sock: _socket.socket) -> tuple[dict[str, object] | None, list[int]]:
    """The next message and its fds; (None, []) at end of stream. A truncated or malformed
    message raises OSError (after closing any fds it carried)."""
    data, ancillary, flags, _ = sock.recvmsg(MAX_MESSAGE, _socket.CMSG_SPACE(MAX_FDS * _INT))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % _INT
            fds += [
                int.from_bytes(payload[i : i + _INT], sys.byteorder, signed=True)
                for i in range(0, usable, _INT)
            ]
    if not data and not ancillary:
        return None, []
    try:
        if flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC):
            raise ValueError("truncated message")
        message = marshal.loads(data)
        if not isinstance(message, dict):
            raise ValueError("not a message")
    except (ValueError, EOFError, TypeError) as exc:
        for fd in fds:
            os.close(fd)
        raise OSError(f"bad message: {exc}") from None
    return message, fds
