"""Make every trust store the sandbox's clients use trust the run's CA (fakenet/ca.py).

Only the CA *certificate* is handled here; its key stays in the FakeNetwork. What is done, per run:

* System store (OpenSSL's default paths: Python's ssl/urllib, curl, git, ruby, php, Debian's node,
  cargo's libcurl): a per-run copy of the host's /etc/ssl/certs is bound over /etc/ssl/certs. It
  holds the host's entries (symlinks into /usr/share/ca-certificates, which the sandbox has), the
  CA as `<name>.pem` plus its OpenSSL subject-hash link (`<hash>.0`, for CApath lookups), and
  `ca-certificates.crt` = the host bundle + the CA. /usr/lib/ssl/cert.pem points there already.
* certifi bundles, which ignore the system store: pip's vendored one and any other `cacert.pem`
  of a certifi/Composer bundle visible read-only (under /usr, and under every read-only bind the
  run adds, e.g. a pre-installed site-packages persona) get a per-run copy (original + CA) bound
  over them. Those a package installs into the writable home (`pip install --target` brings its
  own certifi) are appended to between phases (`append_to_home_bundles`).
* Environment: `SSL_CERT_FILE`, `SSL_CERT_DIR`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`,
  `CARGO_HTTP_CAINFO` name the system bundle, `NODE_EXTRA_CA_CERTS` the CA file. These are what a
  workstation behind a TLS-inspecting proxy sets; none holds a bait value.
* Mono: the CA is planted in the user's store (~/.config/.mono/new-certs/Trust/<hash>.0, PEM,
  for BTLS; ~/.config/.mono/certs/Trust/ski-<SKI>.cer, DER, for the legacy stack), as `cert-sync
  --user` would.

Registry TLS stays verifiable: the bundles keep every real root and only gain the CA.

The certificate is read with the small DER walker below (subject, subject key identifier), not
with `cryptography`, whose import (~50-70 ms) would otherwise precede every run's first phase.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

HOST_CERTS = Path("/etc/ssl/certs")
SANDBOX_CERTS = "/etc/ssl/certs"
SYSTEM_BUNDLE = f"{SANDBOX_CERTS}/ca-certificates.crt"
CA_FILE = "Corporate_Inspection_Root_CA_G2.pem"
CA_PATH = f"{SANDBOX_CERTS}/{CA_FILE}"
BUNDLE_NAMES = ("cacert.pem",)
# Where read-only certifi/Composer bundles live on the host's /usr (which the sandbox sees).
SYSTEM_BUNDLE_ROOTS = ("/usr/lib/python3", "/usr/lib/python3.11", "/usr/local/lib", "/usr/share/php")
_MAX_WALK = 200_000  # directory entries looked at per tree: a package cannot make us walk forever


@dataclass(frozen=True)
class TrustStores:
    binds: tuple[tuple[str, str], ...]  # (host path, sandbox path), read-only
    env: dict[str, str] = field(default_factory=dict)


def subject_hash(cert_pem: bytes) -> str:
    """OpenSSL's subject hash (`openssl x509 -subject_hash`, the CApath file name) of a certificate.

    X509_NAME_hash_ex: the first 4 bytes, little-endian, of SHA-1 over the name's canonical
    encoding -- each RDN's DER SET in turn (no outer SEQUENCE), string values as UTF8String,
    trimmed, inner whitespace collapsed, ASCII lower-cased. Computed here rather than by running
    openssl, which cost ~100 ms per run under load.
    """
    canon = b""
    for rdn in _children(_subject(pem_to_der(cert_pem))):
        atvs = []
        for atv in _children(rdn):
            oid, value = _children(atv)[:2]
            text = _canonical(_string(value))
            atvs.append(_der(0x30, oid + _der(0x0C, text.encode())))
        canon += _der(0x31, b"".join(sorted(atvs)))
    return hashlib.sha1(canon, usedforsecurity=False).digest()[:4][::-1].hex()


_ASCII_SPACE = " \t\n\v\f\r"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _canonical(text: str | None) -> str:
    """OpenSSL's asn1_string_canon: ASCII whitespace trimmed and runs collapsed, ASCII lower-cased
    (non-ASCII letters are kept as they are)."""
    if text is None:
        return ""
    words = [
        w for w in text.strip(_ASCII_SPACE).translate(str.maketrans(_ASCII_SPACE, " " * 6)).split(" ") if w
    ]
    return " ".join(words).translate(_ASCII_LOWER)


def subject_key_id(cert_der: bytes) -> bytes | None:
    """The certificate's subjectKeyIdentifier extension (2.5.29.14), or None."""
    tbs = _children(_children(cert_der)[0])
    for field_ in tbs:
        if field_[0] != 0xA3:  # [3] extensions
            continue
        for ext in _children(_content(field_)):
            parts = _children(ext)
            if parts[0] == _der(0x06, bytes([0x55, 0x1D, 0x0E])):
                return _content(_content(parts[-1]))  # OCTET STRING holding the OCTET STRING id
    return None


def pem_to_der(pem: bytes) -> bytes:
    """The first certificate of a PEM text, as DER (ValueError if there is none)."""
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    start = pem.find(begin)
    stop = pem.find(end, start + len(begin))
    if start < 0 or stop < 0:
        raise ValueError("no PEM certificate")
    try:
        return base64.b64decode(b"".join(pem[start + len(begin) : stop].split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad PEM certificate: {exc}") from None


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at `at`; ValueError if it runs past the data."""
    if at + 2 > len(data):
        raise ValueError("truncated DER")
    tag, size, start = data[at], data[at + 1], at + 2
    if size & 0x80:
        n = size & 0x7F
        if not 0 < n <= 4 or start + n > len(data):
            raise ValueError("bad DER length")
        size, start = int.from_bytes(data[start : start + n], "big"), start + n
    if start + size > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + size


def _content(element: bytes) -> bytes:
    _, start, end = _tlv(element, 0)
    return element[start:end]


def _children(element: bytes) -> list[bytes]:
    """The whole (tag, length, value) elements inside a constructed DER element."""
    _, at, end = _tlv(element, 0)
    out = []
    while at < end:
        _, _, stop = _tlv(element, at)
        out.append(element[at:stop])
        at = stop
    return out


def _subject(cert_der: bytes) -> bytes:
    """tbsCertificate's subject: after [0] version (optional), serial, signature, issuer, validity."""
    fields = _children(_children(cert_der)[0])
    if fields[0][0] == 0xA0:
        fields = fields[1:]
    return fields[4]


# The directory-string types as cryptography decodes them (others, e.g. a BIT STRING, hash as "").
_STRINGS = {0x0C: "utf-8", 0x13: "latin-1", 0x16: "latin-1", 0x14: "latin-1", 0x1A: "latin-1",
            0x12: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}  # fmt: skip


def _string(element: bytes) -> str | None:
    codec = _STRINGS.get(element[0])
    return _content(element).decode(codec, errors="replace") if codec else None


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _walk_bundles(root: Path, listed: dict[str, int] | None = None) -> Iterator[Path]:
    """Bundle files (`certifi/cacert.pem`, Composer's `res/cacert.pem`) under `root`, no symlinks
    followed; `listed` gets each folder listed, with its mtime (ns)."""
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if listed is not None:
            with contextlib.suppress(OSError):
                listed[dirpath] = os.stat(dirpath, follow_symlinks=False).st_mtime_ns
        seen += len(dirnames) + len(filenames)
        if seen > _MAX_WALK:
            if listed is not None:
                listed[f"{root}/\0cut short"] = -1  # no stat succeeds: such a walk is never reused
            return
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "node_modules", ".git")]
        for name in filenames:
            if name in BUNDLE_NAMES:
                path = Path(dirpath) / name
                if path.parent.name in ("certifi", "res") and not path.is_symlink() and path.is_file():
                    yield path


def _bundles_under(root: Path) -> list[Path]:
    """_walk_bundles, remembered on disk for a folder stamped with its content (the persona's
    site-packages: setup.sh names a `.pins-<hash>` file after its pin list and replaces the
    folder whole), whose walk over ~3,000 folders every run would otherwise repeat."""
    stamps = sorted(p.name for p in root.glob(".pins-*"))
    if len(stamps) != 1:
        return list(_walk_bundles(root))
    key = hashlib.sha256(f"{root}/{stamps[0]}".encode()).hexdigest()[:16]
    memo = _cache_root() / f"bundles-{key}.txt"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return [root / rel for rel in memo.read_text().splitlines() if rel]
    found = list(_walk_bundles(root))
    with contextlib.suppress(OSError):  # a read-only cache: walk again next time
        memo.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with tempfile.NamedTemporaryFile("w", dir=memo.parent, prefix=".bundles-", delete=False) as fh:
            fh.write("".join(f"{p.relative_to(root)}\n" for p in found))
        os.chmod(fh.name, 0o644)
        os.replace(fh.name, memo)  # atomic: concurrent runs read a whole list or none
    return found


def build(
    ca_pem: bytes, workdir: Path, ro_binds: Iterable[tuple[str, str]] = (), home: Path | None = None
) -> TrustStores:
    """Write the per-run trust files under `workdir` and return the binds and env that use them.

    Per run only the CA file and the bundles are written (a few ms); the copy of /etc/ssl/certs
    with its ~300 links is built once per host and reused (`_certs_skeleton`): the CA's file
    name and subject are fixed, so the CA file and its hash link are placeholders there that the
    per-run CA is bound over.
    """
    workdir.mkdir(parents=True, exist_ok=True, mode=0o755)
    workdir.chmod(0o755)
    skeleton = _certs_skeleton(subject_hash(ca_pem))
    ca_copy = workdir / CA_FILE
    ca_copy.write_bytes(ca_pem)
    host_bundle = HOST_CERTS / "ca-certificates.crt"
    system = workdir / "ca-certificates.crt"
    system.write_bytes(_with_ca(host_bundle.read_bytes() if host_bundle.is_file() else b"", ca_pem))
    binds: list[tuple[str, str]] = [
        (str(skeleton), SANDBOX_CERTS),
        (str(ca_copy), CA_PATH),
        (str(system), SYSTEM_BUNDLE),
    ]
    targets: dict[str, Path] = {p: Path(p) for p in _system_bundles()}  # sandbox path -> host original
    for host, inside in ro_binds:
        if Path(host).is_dir():
            for path in _bundles_under(Path(host)):
                targets[f"{inside.rstrip('/')}/{path.relative_to(host)}"] = path
    for i, (inside, original) in enumerate(sorted(targets.items())):
        copy = workdir / f"bundle-{i}.pem"
        copy.write_bytes(_with_ca(original.read_bytes(), ca_pem))
        binds.append((str(copy), inside))
    for path in workdir.iterdir():
        path.chmod(0o644)  # bwrap runs as `nobody` and must read the bind sources
    if home is not None:
        plant_mono(ca_pem, home)
    env = {
        "SSL_CERT_FILE": SYSTEM_BUNDLE,
        "SSL_CERT_DIR": SANDBOX_CERTS,
        "REQUESTS_CA_BUNDLE": SYSTEM_BUNDLE,
        "CURL_CA_BUNDLE": SYSTEM_BUNDLE,
        "CARGO_HTTP_CAINFO": SYSTEM_BUNDLE,
        "NODE_EXTRA_CA_CERTS": CA_PATH,
    }
    return TrustStores(tuple(binds), env)


@functools.cache
def _system_bundles() -> tuple[str, ...]:
    """certifi/Composer bundles on the host's /usr (the sandbox's /usr); it does not change while we run.

    The walk (~570 folders, 15-50 ms) is remembered on disk with the mtime of every folder it
    listed: a bundle added, removed or renamed anywhere changes its folder's mtime, so an
    unchanged set of mtimes (one stat per folder, ~1 ms) is an unchanged answer."""
    memo = _cache_root() / "system-bundles.json"
    remembered = _remembered_bundles(memo)
    if remembered is not None:
        return remembered
    started = time.time()
    found: list[str] = []
    listed: dict[str, int] = {}
    for root in SYSTEM_BUNDLE_ROOTS:
        if Path(root).is_dir():
            found += [str(p) for p in _walk_bundles(Path(root), listed) if str(p) not in found]
    # a folder changed in the second before the walk may have changed after its listing, within
    # its mtime's granularity (git's "racy" timestamps): such a walk is not remembered
    if all(mtime < (started - 2) * 1e9 for mtime in listed.values()):
        _remember(
            memo, {"format": 1, "roots": list(SYSTEM_BUNDLE_ROOTS), "folders": listed, "bundles": found}
        )
    return tuple(found)


def _remembered_bundles(memo: Path) -> tuple[str, ...] | None:
    """The remembered walk, if every folder it listed still has its mtime; else None."""
    try:
        saved = orjson.loads(memo.read_bytes())
        if saved["format"] != 1 or saved["roots"] != list(SYSTEM_BUNDLE_ROOTS):
            return None
        for folder, mtime in saved["folders"].items():
            if os.stat(folder, follow_symlinks=False).st_mtime_ns != mtime:
                return None
        bundles = tuple(str(p) for p in saved["bundles"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # ValueError: bad JSON too
        return None
    for path in bundles:  # what the walk would yield: a bundle file under a root, no symlink
        p = Path(path)
        if (
            p.name not in BUNDLE_NAMES
            or p.parent.name not in ("certifi", "res")
            or not any(path.startswith(root.rstrip("/") + "/") for root in SYSTEM_BUNDLE_ROOTS)
            or p.is_symlink()
            or not p.is_file()
        ):
            return None
    return bundles


def _remember(memo: Path, value: object) -> None:
    """Write `value` as JSON atomically (concurrent runs read a whole file or none); a read-only
    cache is no error: the next run computes it again."""
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with tempfile.NamedTemporaryFile("wb", dir=memo.parent, prefix=f".{memo.stem}-", delete=False) as fh:
            fh.write(orjson.dumps(value))
        os.chmod(fh.name, 0o644)
        os.replace(fh.name, memo)


def _with_ca(bundle: bytes, ca_pem: bytes) -> bytes:
    sep = b"" if not bundle or bundle.endswith(b"\n") else b"\n"
    return bundle + sep + b"\n# " + CA_FILE.removesuffix(".pem").replace("_", " ").encode() + b"\n" + ca_pem


def _cache_root() -> Path:
    return Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / "trust"


@functools.cache
def _certs_skeleton(ca_hash: str) -> Path:
    """A copy of /etc/ssl/certs (entries as links) plus placeholders for the CA and the bundle.

    Keyed by the host folder's listing, so a change of the host's roots makes a new one. Built in
    a temp folder and renamed into place, so concurrent runs never see half of one.
    """
    root = _cache_root()
    memo = root / f"certs-key-{ca_hash}.json"
    out = _remembered_skeleton(memo)
    if out is not None:
        return out
    started = time.time()
    try:
        folder_mtime = HOST_CERTS.stat().st_mtime_ns
    except OSError:
        folder_mtime = None
    entries = sorted(HOST_CERTS.iterdir()) if HOST_CERTS.is_dir() else []
    listing = "\n".join(
        f"{e.name}>{os.readlink(e) if e.is_symlink() else e.stat().st_mtime_ns}" for e in entries
    )
    key = hashlib.sha256(f"{listing}\n{CA_FILE}\n{ca_hash}".encode()).hexdigest()[:16]
    out = root / f"certs-{key}"
    # The key again from one stat of the folder and of its few entries that are not links (a
    # link is replaced, never changed in place, which changes the folder's mtime); not for a
    # folder changed in the last seconds, whose listing may have missed a change (racy mtime).
    files = {e.name: e.stat().st_mtime_ns for e in entries if not e.is_symlink()}
    if folder_mtime is not None and all(t < (started - 2) * 1e9 for t in (folder_mtime, *files.values())):
        remember = functools.partial(
            _remember, memo, {"format": 1, "folder": folder_mtime, "files": files, "key": key}
        )
    else:
        remember = None
    if out.is_dir():
        if remember is not None:
            remember()
        return out
    root.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = Path(tempfile.mkdtemp(prefix=".certs-", dir=root))
    try:
        for entry in entries:
            target = tmp / entry.name
            # The bind hides the host folder inside the sandbox: links are copied as links (they
            # point into /usr/share/ca-certificates), anything else as a copy.
            if entry.is_symlink():
                os.symlink(os.readlink(entry), target)
            elif entry.is_dir():
                shutil.copytree(entry, target, symlinks=True)
            elif entry.is_file():
                shutil.copy2(entry, target)
        for name in ("ca-certificates.crt", CA_FILE):  # mount points for the per-run files
            with contextlib.suppress(FileNotFoundError):
                (tmp / name).unlink()
            (tmp / name).write_bytes(b"")
        for n in range(10):  # <hash>.0 may be taken by a host root with the same subject hash
            link = tmp / f"{ca_hash}.{n}"
            if not link.exists() and not link.is_symlink():
                os.symlink(CA_FILE, link)
                break
        for path in tmp.iterdir():
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        tmp.chmod(0o755)
        try:
            tmp.rename(out)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if remember is not None:
        remember()
    return out


def _remembered_skeleton(memo: Path) -> Path | None:
    """The skeleton `_certs_skeleton` made for an unchanged /etc/ssl/certs, or None."""
    try:
        saved = orjson.loads(memo.read_bytes())
        if saved["format"] != 1 or HOST_CERTS.stat().st_mtime_ns != saved["folder"]:
            return None
        for name, mtime in saved["files"].items():
            if (HOST_CERTS / name).stat(follow_symlinks=False).st_mtime_ns != mtime:
                return None
        key = str(saved["key"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # ValueError: bad JSON too
        return None
    out = _cache_root() / f"certs-{key}"
    return out if len(key) == 16 and key.isalnum() and out.is_dir() else None


def plant_mono(ca_pem: bytes, home: Path, owner: tuple[int, int] = (65534, 65534)) -> None:
    """Put the CA into Mono's per-user trust stores in the run's home (as `cert-sync --user` does)."""
    der = pem_to_der(ca_pem)
    digest = subject_hash(ca_pem)
    ski = subject_key_id(der)
    if ski is None:
        raise ValueError("the CA certificate has no subject key identifier")
    files = {f".config/.mono/certs/Trust/ski-{ski.hex().upper()}.cer": der}
    if digest:
        files[f".config/.mono/new-certs/Trust/{digest}.0"] = ca_pem
    for rel, data in files.items():
        path = home / rel
        for parent in reversed(path.relative_to(home).parents[:-1]):
            d = home / parent
            if not d.exists():
                d.mkdir(mode=0o755)
                with contextlib.suppress(OSError):
                    os.chown(d, *owner)
        path.write_bytes(data)
        path.chmod(0o644)
        with contextlib.suppress(OSError):
            os.chown(path, *owner)


def append_to_home_bundles(ca_pem: bytes, home: Path) -> list[str]:
    """Append the CA to certifi bundles a phase installed into the writable home; returns their
    sandbox paths. Runs on the host between phases (no sandbox process is alive then), never
    follows a symlink, and only touches regular files, so a planted link cannot redirect the write.
    """
    done = []
    marker = CA_FILE.removesuffix(".pem").replace("_", " ").encode()
    for path in _walk_bundles(home):
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > 16 << 20:
                continue
            if marker in os.pread(fd, st.st_size, 0):
                continue  # already trusted (an earlier phase)
            tail = os.pread(fd, 1, st.st_size - 1) if st.st_size else b"\n"
            addition = _with_ca(b"" if tail == b"\n" else b"x", ca_pem).removeprefix(b"x")
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, addition)
        finally:
            os.close(fd)
        done.append("~/" + str(path.relative_to(home)))  # the persona's home (homepath.py)
    return done
