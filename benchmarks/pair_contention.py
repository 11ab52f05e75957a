"""Per-process CPU time of a fixed workload alone vs two at once (alternated rounds): does running
beside another process inflate CPU time on this machine (caches, memory bandwidth, the hypervisor)?

    python3 benchmarks/pair_contention.py 6     # 6 rounds
"""

import os
import statistics
import subprocess
import sys

CPU = (
    "import time\nt=time.process_time()\nx=0\nfor i in range(6_000_000): x+=i*i\nprint(time.process_time()-t)"
)
SYS = "import os,time\nt=time.process_time()\nfor i in range(150_000): os.stat('/etc/hostname')\nprint(time.process_time()-t)"


def run(code, n):
    ps = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    return [float(p.communicate()[0]) for p in ps]


res = {k: {1: [], 2: []} for k in ("cpu", "syscall")}
for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 6):
    for name, code in (("cpu", CPU), ("syscall", SYS)):
        for n in (1, 2) if r % 2 == 0 else (2, 1):
            res[name][n] += run(code, n)
print("load", os.getloadavg())
for name, d in res.items():
    a, b = statistics.median(d[1]), statistics.median(d[2])
    print(
        f"{name}: alone {a:.3f} s CPU, beside another {b:.3f} s CPU, {b / a:.3f}x  (n={len(d[1])},{len(d[2])})"
    )
