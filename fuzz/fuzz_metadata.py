"""Fuzz the metadata readers: well-formed archives with hostile PKG-INFO, METADATA, package.json.

    .venv/bin/python fuzz/fuzz_metadata.py --seconds 600

The archive is valid, so the fuzzing lands on the header parser, JSON decoding, and the name and
version validation (shell metacharacters, newlines, `../`, huge fields, wrong JSON types), plus
`parse_target` for command-line targets. Every accepted name/version must be safe to use in a
path: `PackageRef.slug` must not contain a path separator, NUL, newline or `..` component.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _archives import build, read_all
from _loop import campaign
from hypothesis import strategies as st

from osptrack.ecosystems.npm import Npm
from osptrack.ecosystems.pypi import PyPI
from osptrack.errors import BadInput
from osptrack.target import PackageRef, parse_target

HOSTILE = [
    "$(id)",
    "`id`",
    "a;rm -rf /",
    "../../x",
    "a\nb",
    "a\x00b",
    "..",
    "-rf",
    " ",
    "a" * 300,
    "1.0\nName: evil",
    "@scope/../x",
    "é",
    "1.0; echo",
    "pkg",
    "1.0",
    "1.0.0",
    "0",
]
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=60))
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(text, c, max_size=3)),
    max_leaves=10,
)


@st.composite
def case(draw: st.DrawFn) -> tuple[str, bytes, str]:
    which = draw(st.sampled_from(["pkginfo", "wheel", "npm", "target"]))
    name, version = draw(text), draw(text)
    if which == "target":
        return (
            which,
            b"",
            draw(
                st.one_of(
                    text,
                    st.just(f"{name}=={version}"),
                    st.just(f"{name}@{version}"),
                    st.just(f"pkg:pypi/{name}@{version}"),
                )
            ),
        )
    if which == "npm":
        body = draw(
            st.one_of(
                st.just({"name": name, "version": version}),
                st.dictionaries(st.sampled_from(["name", "version", "main"]), json_value),
                json_value,
            )
        )
        raw = json.dumps(body).encode() if draw(st.booleans()) else draw(st.binary(max_size=300))
        return which, build("tgz", [("package/package.json", raw, "file")]), ".tgz"
    header = draw(
        st.one_of(
            st.just(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
            st.text(max_size=300),
        )
    )
    raw = header.encode("utf-8", "surrogatepass") if draw(st.booleans()) else draw(st.binary(max_size=300))
    if which == "wheel":
        return which, build("zip", [("pkg-1.0.dist-info/METADATA", raw, "file")]), ".whl"
    return which, build("tgz", [("pkg-1.0/PKG-INFO", raw, "file")]), ".tar.gz"


def _slug_is_safe(ref: PackageRef) -> None:
    slug = ref.slug
    assert "/" not in slug and "\x00" not in slug and "\n" not in slug, slug
    assert slug not in (".", "..") and not slug.startswith("-"), slug


def check(value: object) -> None:
    which, data, extra = value  # type: ignore[misc]
    if which == "target":
        for eco in ("pypi", "npm", "rubygems", "crates.io", "nuget", "packagist"):
            try:
                ref = parse_target(eco, extra)
            except BadInput as exc:
                assert "\n" not in str(exc).strip() or "\n" in extra, repr(exc)
                continue
            if ref.name:
                _slug_is_safe(ref)
        return
    with tempfile.TemporaryDirectory(prefix="osptrack-fuzz-") as tmp:
        path = Path(tmp) / f"pkg-1.0{extra}"
        path.write_bytes(data)
        read_all(path)
        for eco in (PyPI(), Npm()):
            try:
                meta = eco.read_metadata(path)
            except BadInput:
                continue
            _slug_is_safe(PackageRef(eco.name, meta.name, meta.version, path))


if __name__ == "__main__":
    campaign("metadata", case(), check)
