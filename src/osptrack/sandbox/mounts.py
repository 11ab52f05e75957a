"""mount(2), umount2(2) and unshare(2) through libc, for the run's own set-up and teardown.

Each was a `mount`, `umount -l` or `ip netns add/del` process before every run: 5-10 ms each
(more under load), and the syscall is what they run anyway.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_LIBC.unshare.argtypes = [ctypes.c_int]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(
    source: str, target: Path | str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        _LIBC.mount(
            source.encode(),
            os.fsencode(target),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data is not None else None,
        ),
        f"mount {target}",
    )


def umount_detach(target: Path | str) -> None:
    """`umount -l`: detach now; the kernel frees the filesystem when nothing uses it any more."""
    _check(_LIBC.umount2(os.fsencode(target), MNT_DETACH), f"umount {target}")


def unshare(flags: int) -> None:
    """Only the calling thread moves (for CLONE_NEWNET)."""
    _check(_LIBC.unshare(flags), "unshare")
