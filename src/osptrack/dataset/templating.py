"""Path templating: replace run-specific parts of paths so features and baselines generalise.

Two stages. The generic stage (install roots, home, random temp names, pids) does not depend on
the run, so its result is cached per raw path: toolchain paths repeat across thousands of reports
and are templated once. The package stage (the package's own name and version) depends on the run
and only runs on paths that contain the name at all.

Placeholders:
  <SITE>  a site-packages / dist-packages / node_modules / gems / cargo registry / vendor root
  <HOME>  /root or /home/<user>
  <TMP>   /tmp, /var/tmp, /dev/shm
  <RAND>  a random temp-name segment (tmpk2j3h4, pip-install-<RAND>, uuids, long hex)
  <N>     a pid or other long number segment (/proc/<N>/environ)
  <PKG>   the package's own name (any of its spellings)
  <VER>   the package's own version
"""

from __future__ import annotations

import re
from functools import lru_cache

_SITE = re.compile(
    r"^.*?/(?:"
    r"lib(?:64)?/python[0-9.]*/(?:site|dist)-packages"
    r"|node_modules"
    r"|gems/[0-9][^/]*/gems"
    r"|\.cargo/registry/src/[^/]+"
    r"|vendor"
    r")(?=/|$)"
)
_HOME = re.compile(r"^(?:/root|/home/[^/]+)(?=/|$)")
# osptrack's own PyPI layout installs with `pip install --target ~/site`.
_HOME_SITE = re.compile(r"^(?:/root|/home/[^/]+)/site(?=/|$)")
# Hash-named cache folders (npm's cacache, pip's wheel cache: 2-hex levels then a long hash),
# npm's per-extraction temp folders and dated logs.
_HASH_DIRS = re.compile(
    r"(/_cacache/(?:content-v2/sha[0-9]+|index-v5)|/wheels)(?:/[0-9a-f]{2}){1,4}(?:/[0-9a-f]{16,})?(?=/|$)"
    r"|(/_cacache/tmp)/[^/]+"
    r"|(/_logs)/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9_]+Z"
)
_TMP = re.compile(r"^(?:/tmp|/var/tmp|/dev/shm)(?=/|$)")
# Random segments: Python tempfile, pip's build dirs, npm's cache dirs, uuids, long hex, numbers.
_RAND_SEGMENT = re.compile(
    r"(?<=/)(?:"
    r"(?P<prefix>tmp|pip-[a-z-]+?-|npm-[0-9]+-|_MEI|build-env-|req-build-)(?P<r1>[A-Za-z0-9_]{6,})"
    r"|(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|(?P<hex>[0-9a-f]{16,})"
    r"|(?P<num>[0-9]{3,})"
    r")(?=/|$|\.)"
)
# tempfile names without a prefix (mkstemp(dir=...)): 8 random characters right under the temp dir.
_TMP_NAME = re.compile(r"^<TMP>/[a-z0-9_]{8}(?=/|$)")
# Atomic-write temp files: `RECORDk7ees9kr.tmp`, and `x.pyc.140449501595056` (an object id).
_TMP_SUFFIX = re.compile(r"[a-z0-9_]{8}\.tmp$|(?<=\.)[0-9]{6,}$")

# Cheap C-level pre-checks, so the common path (a stdlib or system file) skips the big regexes.
_MAYBE_SITE = re.compile(r"-packages|node_modules|/gems/|\.cargo/registry|/vendor")
_MAYBE_RAND = re.compile(r"[0-9]{3}|/tmp|/pip-|/npm-|/_MEI|/build-env-|/req-build-|[0-9a-f]{8}")

_EMBEDDED_PATH = re.compile(r"(?<![\w.])/(?:tmp|var/tmp|dev/shm|root|home|usr|proc)/[^\s'\",;:)]*")

PATH_CACHE: dict[str, str] = {}
PATH_CACHE_MAX = 500_000  # entries per cache; unique paths (a package's own files) would only grow it


def _rand_sub(m: re.Match[str]) -> str:
    if m.group("prefix") is not None:
        return f"{m.group('prefix')}<RAND>"
    if m.group("num") is not None:
        return "<N>"
    return "<RAND>"


def _hash_sub(m: re.Match[str]) -> str:
    return (m.group(1) or m.group(2) or m.group(3)) + "/<RAND>"


def _suffix_sub(m: re.Match[str]) -> str:
    return "<RAND>.tmp" if m.group().endswith(".tmp") else "<N>"


def template_full(path: str, leaf: bool = True) -> str:
    """Template a whole path with every rule (uncached; `template_generic` is the fast front).

    `leaf=False` for a folder: the rules anchored at the end of a file name do not apply.
    """
    out = path
    m = _SITE.match(out) if _MAYBE_SITE.search(out) else None
    if m:
        out = "<SITE>" + out[m.end() :]
    elif out.startswith(("/root", "/home/")):
        if _HOME_SITE.match(out):
            out = _HOME_SITE.sub("<SITE>", out, count=1)
        else:
            out = _HOME.sub("<HOME>", out, count=1)
    elif out.startswith(("/tmp", "/var/tmp", "/dev/shm")):
        out = _TMP.sub("<TMP>", out, count=1)
        out = _TMP_NAME.sub("<TMP>/<RAND>", out, count=1)
    if "/_ca" in out or "/_logs/" in out or "/wheels/" in out:
        out = _HASH_DIRS.sub(_hash_sub, out)
    if _MAYBE_RAND.search(out):
        out = _RAND_SEGMENT.sub(_rand_sub, out)
    return _TMP_SUFFIX.sub(_suffix_sub, out) if leaf else out


# Last segments that a whole-path rule may consume together with their folder.
_JOINT_BASENAMES = frozenset(
    {"node_modules", "site-packages", "dist-packages", "vendor", "gems", "site", "wheels"}
)
_JOINT_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/home", "/var", "/dev")
_FILE_NAMES: dict[str, str] = {}
_FOLDER_NAMES: dict[str, str] = {}
_FOLDERS: dict[str, str] = {}


def _bounded_put(cache: dict[str, str], key: str, value: str) -> str:
    if len(cache) >= PATH_CACHE_MAX:
        cache.clear()  # bounded memory on huge builds; it refills with the hot entries
    cache[key] = value
    return value


def _template_name(name: str, leaf: bool) -> str:
    cache = _FILE_NAMES if leaf else _FOLDER_NAMES
    out = cache.get(name)
    if out is None:
        out = _RAND_SEGMENT.sub(_rand_sub, "/" + name)
        if leaf:
            out = _TMP_SUFFIX.sub(_suffix_sub, out)
        out = _bounded_put(cache, name, out[1:])
    return out


def _split_templated(path: str, leaf: bool) -> str:
    folder, sep, name = path.rpartition("/")
    if (
        not sep
        or not folder
        or name in _JOINT_BASENAMES
        or folder in _JOINT_FOLDERS
        or folder.endswith("/.cargo/registry/src")
        or "/_ca" in path
        or "/_logs" in path
        or "/wheels" in path
    ):
        return template_full(path, leaf)
    parent = _FOLDERS.get(folder)
    if parent is None:
        parent = _bounded_put(_FOLDERS, folder, _split_templated(folder, leaf=False))
    return parent + "/" + _template_name(name, leaf)


def template_generic(path: str) -> str:
    """Template the run-independent parts of `path` (cached).

    A path is its folder plus its last segment, and the rules are per segment or anchored at the
    start, so the folder (shared by many files) and the name (`__init__.py`, `index.js`) are
    templated and cached separately; the few shapes where a rule spans the two go through
    `template_full`. tests/dataset checks that the two agree.
    """
    cached = PATH_CACHE.get(path)
    if cached is not None:
        return cached
    return _bounded_put(PATH_CACHE, path, _split_templated(path, leaf=True))


def name_variants(ecosystem: str, name: str) -> tuple[str, ...]:
    """Spellings of a package's name that show up in paths and command lines."""
    if not name:
        return ()
    forms = {name, name.lower()}
    if ecosystem == "pypi":
        low = name.lower()
        forms |= {re.sub(r"[-_.]+", "-", low), re.sub(r"[-_.]+", "_", low), re.sub(r"[-_.]+", "_", name)}
    if ecosystem == "npm" and name.startswith("@") and "/" in name:
        forms.add(name.split("/", 1)[1])  # the scope folder and the bare name both appear
    if ecosystem == "crates.io":
        forms.add(name.replace("-", "_"))
    # Very short names would template ordinary path segments (`a`, `os`); keep them literal.
    return tuple(sorted((f for f in forms if len(f) >= 3), key=len, reverse=True))


@lru_cache(maxsize=4096)
def _package_pattern(variants: tuple[str, ...], version: str) -> re.Pattern[str] | None:
    if not variants:
        return None
    names = "|".join(re.escape(v) for v in variants)
    ver = rf"(?:[-_]v?(?P<ver>{re.escape(version)}))?" if version else ""
    return re.compile(rf"(?<![A-Za-z0-9])(?:{names}){ver}(?![A-Za-z0-9])")


@lru_cache(maxsize=4096)
def _re2_patterns(variants: tuple[str, ...], version: str) -> tuple[str | None, str | None]:
    """The same rule for Arrow's RE2, which has no look-around: the boundary characters are
    captured and put back, so a match consumes them (see `Templater.package_many`)."""
    if not variants:
        return None, None
    names = "|".join(re.escape(v) for v in variants)
    with_version = (
        rf"(^|[^A-Za-z0-9])(?:{names})[-_]v?{re.escape(version)}([^A-Za-z0-9]|$)" if version else None
    )
    return with_version, rf"(^|[^A-Za-z0-9])(?:{names})([^A-Za-z0-9]|$)"


class Templater:
    """Templates paths and argv for one run (its ecosystem, name and version)."""

    __slots__ = ("_pattern", "variants", "_version", "_local", "_re2", "detect_pattern")

    def __init__(self, ecosystem: str, name: str, version: str) -> None:
        self.variants = name_variants(ecosystem, name)
        self._version = version
        self._pattern = _package_pattern(self.variants, version)
        self._re2 = _re2_patterns(self.variants, version)
        # Any spelling of the name anywhere (a superset of what `package` rewrites), for RE2.
        self.detect_pattern = "|".join(re.escape(v) for v in self.variants)
        self._local: dict[str, str] = {}

    def package_many(self, texts: list[str]) -> list[str]:
        """`package` over many strings at once, in Arrow's RE2 (the File pass's hot path).

        A match consumes its boundary characters, so two occurrences sharing one (`six/six`)
        need a second pass; after it, no two untemplated occurrences can be adjacent.
        """
        with_version, name_only = self._re2
        if name_only is None or not texts:
            return texts
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(texts, type=pa.string())
        if with_version is not None:
            for _ in range(2):
                arr = pc.replace_substring_regex(arr, pattern=with_version, replacement=r"\1<PKG>-<VER>\2")
        for _ in range(2):
            arr = pc.replace_substring_regex(arr, pattern=name_only, replacement=r"\1<PKG>\2")
        return arr.to_pylist()

    def _package_sub(self, m: re.Match[str]) -> str:
        return "<PKG>-<VER>" if m.group("ver") else "<PKG>"

    def package(self, text: str) -> str:
        if self._pattern is None or not any(v in text for v in self.variants):
            return text
        if self._version:
            return self._pattern.sub(self._package_sub, text)
        return self._pattern.sub("<PKG>", text)

    def path(self, path: str) -> str:
        hit = self._local.get(path)
        if hit is not None:
            return hit
        out = self.package(template_generic(path))
        self._local[path] = out
        return out

    def argv(self, argv: list[str] | None) -> str:
        """One templated command line, for baseline matching of Commands."""
        if not argv:
            return ""
        return " ".join(self.path(a) if a.startswith("/") else self._embedded(a) for a in argv)

    def _embedded(self, arg: str) -> str:
        """An argument that is not a path may embed some (`python -c '...%r' % ('/tmp/x/setup.py',)`)."""
        if "/" in arg:
            arg = _EMBEDDED_PATH.sub(lambda m: template_generic(m.group()), arg)
        return self.package(arg)
