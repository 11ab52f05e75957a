"""The sandbox's /usr/lib/locale as one locale archive: the host's locales plus the persona's.

Every locale the persona's environment names (LANG, LC_*) exists inside, as on a workstation
whose user chose it: without it `setlocale(LC_ALL, "")` fails, `locale` warns "Cannot set
LC_ALL to default locale", Python's `locale.setlocale(LC_ALL, "")` raises and perl warns
"Setting locale failed" in every process: a cheap sandbox check, and a crash for a payload that
does not expect it. Missing ones are compiled from glibc's sources (/usr/share/i18n, Debian's
`locales` package) by glibc's own `localedef`, exactly as Debian's locale-gen does (`localedef
-i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8`), into the archive.

The archive is also what keeps the per-process cost low. Debian here ships C.UTF-8 as a folder of
compiled files and no locale-archive; glibc then opens, in every process that calls setlocale()
(every shell, coreutils tool, python3 of pip's tree), the archive (ENOENT), then each LC_*
category under the name as given and under its normalised codeset: about 25 traced opens a
process. With an archive holding the locales, glibc maps it once and finds every category there.

The host's own locales are unchanged: its compiled folders are added with `localedef
--add-to-archive` (the same data, byte for byte what setlocale/nl_langinfo/`locale -a`/`locale
-k` return, tests/sandbox/test_locales.py) and the folders themselves stay (copied with their
modes and times); a host archive is copied and the missing locales added to the copy. A
locale-archive with en_US.utf8 in it is what a Debian or Ubuntu workstation with `locales`
configured has.

Built once per host into the cache (keyed on everything it is built from, the set of locales
included) and bound read-only over /usr/lib/locale. Nothing is bound when the host's is already
as good (an archive holding every named locale). A locale that cannot be made (no sources, no
localedef, localedef failed) is recorded as missing in run.json and `osptrack doctor`; the run
goes on with what there is, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOCALE_DIR = "/usr/lib/locale"
ARCHIVE = "locale-archive"
NOTE = ".made.json"  # beside a build: the names its recipes put into the archive
I18N_DIR = "/usr/share/i18n"  # locales/, charmaps/, SUPPORTED: Debian's `locales` package
ALIAS_FILE = "/usr/share/locale/locale.alias"  # what locale-gen hands localedef (also `locales`)
SOURCES_PACKAGE = "locales"
# The names glibc always has, with no data to load.
BUILTIN = frozenset({"C", "POSIX"})


@dataclass(frozen=True)
class Recipe:
    """`localedef -i INPUT -f CHARMAP NAME`: how Debian's locale-gen makes one locale."""

    name: str
    input: str
    charmap: str


@dataclass(frozen=True)
class LocaleView:
    binds: tuple[tuple[str, str], ...]  # the read-only bind over /usr/lib/locale, or ()
    locales: Mapping[str, str]  # each named locale: "host", "compiled" or "missing: why"


_VIEWS: dict[tuple[str, str, tuple[str, ...]], LocaleView] = {}


def named(env: Mapping[str, str]) -> tuple[str, ...]:
    """The locales an environment asks for (LANG, LC_ALL and every LC_*), sorted; C and POSIX
    need no data. LANGUAGE is a list of message catalogues, not a locale."""
    return tuple(
        sorted({v for k, v in env.items() if (k == "LANG" or k.startswith("LC_")) and v and v not in BUILTIN})
    )


def normalised(name: str) -> str:
    """The name with its codeset normalised as glibc's _nl_normalize_codeset does (en_US.UTF-8
    -> en_US.utf8): the form the archive and `locale -a` list."""
    base, at, modifier = name.partition("@")
    language, dot, codeset = base.partition(".")
    if not dot:
        return name
    norm = "".join(c.lower() for c in codeset if c.isalnum())
    if norm.isdigit():
        norm = "iso" + norm
    return f"{language}.{norm}{at}{modifier}"


def compiled_locales(root: Path) -> list[Path]:
    """The compiled locale folders under `root` (those with an LC_CTYPE), sorted."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in entries if not p.is_symlink() and (p / "LC_CTYPE").is_file()]


def archived(localedef: str, archive: Path) -> frozenset[str]:
    """The locale names an archive holds (none when there is no archive)."""
    if not archive.is_file():
        return frozenset()
    out = subprocess.run(
        [localedef, "--list-archive", str(archive)], capture_output=True, text=True, timeout=30, check=True
    )
    return frozenset(out.stdout.split())


def _present(name: str, root: Path, in_archive: frozenset[str]) -> bool:
    return any(n in in_archive or (root / n / "LC_CTYPE").is_file() for n in {name, normalised(name)})


def recipe(name: str, i18n: Path) -> Recipe | str:
    """How locale-gen would make `name` from the sources under `i18n`, or why it cannot."""
    base, at, modifier = name.partition("@")
    language, dot, codeset = base.partition(".")
    charmap = None
    with contextlib.suppress(OSError):  # SUPPORTED: `en_US.UTF-8 UTF-8`, `en_US ISO-8859-1`
        for line in (i18n / "SUPPORTED").read_text().splitlines():
            fields = line.split()
            if line.startswith(language) and len(fields) == 2 and normalised(fields[0]) == normalised(name):
                charmap = fields[1]
                break
    if charmap is None:
        if not dot:
            return f"{name} names no codeset and is not in {i18n}/SUPPORTED"
        charmap = codeset
    # locale-gen: the input named as the locale if such a file exists, else language@modifier
    source = name if (i18n / "locales" / name).is_file() else language + at + modifier
    if not (i18n / "locales" / source).is_file():
        return f"no {i18n}/locales/{source} (Debian package `{SOURCES_PACKAGE}`)"
    if not any((i18n / "charmaps" / f).is_file() for f in (charmap, f"{charmap}.gz")):
        return f"no {i18n}/charmaps/{charmap} (Debian package `{SOURCES_PACKAGE}`)"
    return Recipe(name, source, charmap)


def _stats(root: str | Path, parts: list[str], rel: str = "") -> None:
    """Each entry's path, size, mode and mtime under `root`, depth first in name order."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        parts.append(f"{rel}{entry.name}:{st.st_size}:{st.st_mode:o}:{st.st_mtime_ns}")
        if entry.is_dir(follow_symlinks=False):
            _stats(entry.path, parts, f"{rel}{entry.name}/")


def _stat(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:absent"
    return f"{path}:{st.st_size}:{st.st_mode:o}:{st.st_mtime_ns}"


def cache_key(root: Path, recipes: tuple[Recipe, ...] = (), i18n: Path = Path(I18N_DIR)) -> str:
    """Names the built folder by what it is built from: glibc, every file's path, size, mode and
    mtime under `root`, and for each locale compiled its recipe and the sources it reads."""
    parts: list[str] = [
        os.confstr("CS_GNU_LIBC_VERSION") or "",
        os.uname().machine,
    ]  # the archive format is glibc's
    _stats(root, parts)
    if recipes:
        for r in sorted(recipes, key=lambda r: r.name):
            parts.append(f"locale:{r.name}:{r.input}:{r.charmap}")
            parts += [_stat(i18n / "charmaps" / r.charmap), _stat(i18n / "charmaps" / f"{r.charmap}.gz")]
        parts += [_stat(i18n / "SUPPORTED"), _stat(Path(ALIAS_FILE))]
        _stats(i18n / "locales", parts)  # `copy "i18n"` and the like: any of them may be read
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _trusted(folder: Path, inside: tuple[str, ...] = (ARCHIVE,)) -> bool:
    """A cached folder counts only if we own it and nobody else may write it or its archive."""
    try:
        for path in (folder, *(folder / name for name in inside)):
            st = path.stat()
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def build(root: Path, out: Path, recipes: tuple[Recipe, ...] = (), i18n: Path = Path(I18N_DIR)) -> bool:
    """Write `out`: a copy of `root` plus a locale-archive of its compiled locales (or of its
    archive) and of `recipes`. False when there would be no archive or localedef is missing."""
    localedef = shutil.which("localedef")
    has_archive = (root / ARCHIVE).is_file()
    found = [] if has_archive else compiled_locales(root)  # a host archive is used as it is
    if localedef is None or not (has_archive or found or recipes):
        return False
    if root.is_dir():
        shutil.copytree(root, out, symlinks=True)  # copystat: the same modes and times inside
    else:
        out.mkdir(mode=0o755)
    prefix = Path(tempfile.mkdtemp(prefix=".localedef-", dir=out.parent))
    try:
        target = prefix / LOCALE_DIR.lstrip("/")
        target.mkdir(parents=True)
        if has_archive:
            shutil.copy2(root / ARCHIVE, target / ARCHIVE)
        elif found:
            subprocess.run(
                [localedef, f"--prefix={prefix}", "--add-to-archive", *map(str, found)],
                check=True,
                capture_output=True,
                timeout=60,
            )
        alias = ["-A", ALIAS_FILE] if Path(ALIAS_FILE).is_file() else []
        env = {**os.environ, "I18NPATH": str(i18n)}  # where localedef finds locales/ and charmaps/
        for r in recipes:
            # -c, and no check: like locale-gen, keep what localedef made despite its warnings
            # (exit 1); what did not make it into the archive is reported missing by the caller.
            subprocess.run(
                [localedef, f"--prefix={prefix}", "-i", r.input, "-c", "-f", r.charmap, *alias, r.name],
                capture_output=True,
                timeout=300,
                env=env,
            )
        archive = target / ARCHIVE
        if not archive.is_file():
            return False
        archive.chmod(0o644)
        os.replace(archive, out / ARCHIVE)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    if root.is_dir():
        st = os.stat(root)
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    return True


def cache_dir() -> Path:
    from osptrack.sandbox.bwrap import seccomp_cache_dir  # the same cache root and fallback

    folder = seccomp_cache_dir().parent / "locale"
    folder.mkdir(parents=True, exist_ok=True, mode=0o755)
    return folder


def view(names: tuple[str, ...] = (), root: Path = Path(LOCALE_DIR), i18n: Path | None = None) -> LocaleView:
    """The bind that gives the sandbox the host's locales and `names` in one archive, and what
    became of each name. Once per process; the archive once per host."""
    i18n = Path(I18N_DIR) if i18n is None else i18n  # looked up now: tests point it elsewhere
    key = (str(root), str(i18n), tuple(sorted(set(names))))
    if key not in _VIEWS:
        try:
            _VIEWS[key] = _view(key[2], root, i18n)
        except (OSError, subprocess.SubprocessError) as exc:
            why = f"missing: the locale archive could not be built ({exc})"
            _VIEWS[key] = LocaleView((), {n: why for n in key[2]})
    return _VIEWS[key]


def binds(names: tuple[str, ...] = (), root: Path = Path(LOCALE_DIR)) -> tuple[tuple[str, str], ...]:
    return view(names, root).binds


def _view(names: tuple[str, ...], root: Path, i18n: Path) -> LocaleView:
    localedef = shutil.which("localedef")
    in_host = archived(localedef, root / ARCHIVE) if localedef else frozenset()
    state: dict[str, str] = {}
    recipes: list[Recipe] = []
    for name in names:
        if _present(name, root, in_host):
            state[name] = "host"
        elif localedef is None:
            state[name] = "missing: no localedef (Debian package `libc-bin`)"
        else:
            how = recipe(name, i18n)
            if isinstance(how, str):
                state[name] = f"missing: {how}"
            else:
                recipes.append(how)
    gains = recipes or (not (root / ARCHIVE).exists() and compiled_locales(root))
    if not gains or localedef is None:
        return LocaleView((), state)
    built = _built(root, tuple(recipes), i18n, localedef)
    if built is None:
        state |= {r.name: "missing: localedef made no archive" for r in recipes}
        return LocaleView((), state)
    made = _made(built)
    for r in recipes:
        ok = r.name in made
        state[r.name] = (
            "compiled" if ok else f"missing: localedef -i {r.input} -f {r.charmap} {r.name} failed"
        )
    return LocaleView(((str(built), LOCALE_DIR),), state)


def _made(built: Path) -> frozenset[str]:
    """The names (as asked for) that the build's recipes put into its archive, from its note."""
    note = built.with_name(built.name + NOTE)
    if _trusted(note, ()):
        with contextlib.suppress(OSError, ValueError):
            return frozenset(json.loads(note.read_text()))
    return frozenset()


def _built(root: Path, recipes: tuple[Recipe, ...], i18n: Path, localedef: str) -> Path | None:
    """The cached, trusted build for these inputs, made now if it is not there. Beside it, a note
    of which recipes made it into the archive, so that later processes need not list it."""
    folder = cache_dir()
    built = folder / cache_key(root, recipes, i18n)
    note = built.with_name(built.name + NOTE)
    if not _trusted(built) or not _trusted(note, ()):
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
        try:
            if not build(root, tmp / "locale", recipes, i18n):
                return None
            made = archived(localedef, tmp / "locale" / ARCHIVE)
            names = [r.name for r in recipes if normalised(r.name) in made or r.name in made]
            (tmp / "note").write_text(json.dumps(names))
            (tmp / "note").chmod(0o644)
            os.replace(tmp / "note", note)  # first: a build whose folder is in place has its note
            with contextlib.suppress(FileNotFoundError):
                if not _trusted(built):
                    shutil.rmtree(built)  # a stale or foreign copy: replaced, never used
            with contextlib.suppress(OSError):  # a concurrent run renamed its own whole copy first
                os.rename(tmp / "locale", built)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not _trusted(built) or not _trusted(note, ()):
            return None
    return built
