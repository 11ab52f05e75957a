"""`mono` command lines that end without Mono's runtime shutdown (inside the sandbox).

See mono_host.cs for why: Mono 6.8's shutdown can spin until the phase timeout under strace
--seccomp-bpf. The host is compiled once per process into TMPDIR; mcs takes ~0.15 s.

Usage as a script: `python3 mono_host.py` prints the compiled host's path.
"""

import functools
import os
import subprocess
import sys

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mono_host.cs")


@functools.cache
def host_exe():
    exe = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"osptrack-mono-host-{os.getpid()}.exe")
    subprocess.run(
        ["mcs", "-nologo", f"-out:{exe}", SOURCE], check=True, stdin=subprocess.DEVNULL, stdout=sys.stderr
    )
    return exe


def mono_argv(*program_and_args):
    """`mono <host> PROGRAM ARGS...`: PROGRAM runs as under `mono PROGRAM ARGS...`; the prefix alone without them."""
    return ["mono", host_exe(), *program_and_args]


if __name__ == "__main__":
    print(host_exe())
