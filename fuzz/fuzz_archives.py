"""Fuzz the archive readers (zip, tar, tar.gz, tar.bz2) with malformed and hostile archives.

    .venv/bin/python fuzz/fuzz_archives.py --seconds 600

Each example builds a small archive with fuzzed members (traversal names, links, fifos, huge
declared sizes are not possible, so members are real), then optionally corrupts it: truncation,
byte flips, spliced garbage. The readers must return metadata or raise BadInput (one line) and
finish quickly. Nothing is ever extracted, so a write outside the scratch folder is impossible
by construction; the harness checks that the scratch folder holds only the archive afterwards.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _archives import SUFFIXES, build, read_all
from _loop import campaign
from hypothesis import strategies as st

NAMES = [
    "pkg-1.0/PKG-INFO",
    "pkg-1.0/setup.py",
    "pkg-1.0/pyproject.toml",
    "pkg-1.0.dist-info/METADATA",
    "package/package.json",
    "../../etc/passwd",
    "/abs/path",
    "a/../../b",
    "",
    ".",
    "a" * 300,
    "pkg-1.0/",
    "x/y/z/PKG-INFO",
    "\x00bad",
    "dir/\n/PKG-INFO",
]
GOOD_PKG_INFO = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"
GOOD_JSON = b'{"name": "pkg", "version": "1.0.0"}'

member = st.tuples(
    st.one_of(st.sampled_from(NAMES), st.text(max_size=40)),
    st.one_of(st.sampled_from([GOOD_PKG_INFO, GOOD_JSON, b"", b"\xff\xfe\x00"]), st.binary(max_size=2000)),
    st.sampled_from(["file", "file", "file", "dir", "symlink", "hardlink", "fifo"]),
)


@st.composite
def archive(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["zip", "tar", "tgz", "tbz"]))
    data = bytearray(build(kind, draw(st.lists(member, max_size=12))))
    corruption = draw(st.integers(0, 3))
    if corruption == 1 and data:
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif corruption == 2 and data:
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif corruption == 3:
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=200))
    if draw(st.integers(0, 9)) == 0:
        data = bytearray(draw(st.binary(max_size=500)))  # not an archive at all
    return bytes(data), draw(st.sampled_from(SUFFIXES))


def check(value: object) -> None:
    data, suffix = value  # type: ignore[misc]
    with tempfile.TemporaryDirectory(prefix="osptrack-fuzz-") as tmp:
        path = Path(tmp) / f"pkg-1.0{suffix}"
        path.write_bytes(data)
        read_all(path)
        assert [p.name for p in Path(tmp).iterdir()] == [path.name], "a reader wrote beside the archive"


if __name__ == "__main__":
    campaign("archives", archive(), check)
