"""The fake network's certificate authority, and the leaf certificates it mints.

The CA is made once per machine (`CertAuthority.for_machine`): key, certificate and the shared
leaf key in one file, `$OSPTRACK_CACHE/ca/machine-ca.json` (default /var/cache/osptrack),
written atomically, 0600 in a 0700 folder, both owned by the user osptrack runs as (root). It
is used only when folder and file are ours and nobody else's, and made again when missing,
unreadable, corrupt, or within `RENEW_DAYS` of expiring. Loading it reads one small JSON file:
no `cryptography` import (about 50-70 ms) before the first phase. Its private keys never leave
the osptrack process: only the certificate (`cert_pem`) is written into the sandbox's trust
stores (sandbox/trust.py), and the cache folder is not visible in the sandbox (docs/security.md).
`CertAuthority()` still makes a fresh CA in memory (tests, and the fallback when the cache
cannot be trusted).

Leaf certificates are minted on demand, one per SNI name (or per destination address when a
client sends no SNI), and cached as ready `ssl.SSLContext`s; `cryptography` is imported then,
with the first intercepted TLS connection. All leaves share one key pair: minting is then one
ECDSA signature (about a millisecond, see benchmarks/tls.py) instead of a key generation per name.

ECDSA P-256 throughout: every TLS stack a package may bring supports it, and it is far cheaper to
make and to sign with than RSA. The names are those of an ordinary corporate inspection CA, the
kind a real workstation behind a TLS-inspecting proxy has installed; nothing says "sandbox".

`ssl.SSLContext.load_cert_chain` only reads files, so the leaf PEM goes through an anonymous
memfd (`/proc/self/fd/N`), which is never on disk and is closed right after loading.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography and ssl load with the first leaf, not with the network
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_COMMON_NAME = "Corporate Inspection Root CA G2"
CA_ORGANIZATION = "IT Security Services"
ALPN = ("http/1.1",)
LEAF_DAYS = 397  # the CA/Browser Forum maximum: what real leaves have
CA_DAYS = 3650
# A machine CA is made again this long before it expires: every leaf it signs (valid up to
# LEAF_DAYS - 30 days from now) must end before the CA does.
RENEW_DAYS = LEAF_DAYS + 30
MACHINE_CA_FILE = "machine-ca.json"
MACHINE_CA_FORMAT = 1
_MAX_CACHED = 4096  # names a package can make us mint; beyond it leaves are minted but not kept
_MAX_FILE = 64 << 10


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class CaMaterial:
    """What a CA is made of, as PEM: the CA key and certificate, and the key all leaves share."""

    cert_pem: bytes
    key_pem: bytes
    leaf_key_pem: bytes
    not_after: float  # the certificate's notAfter, seconds since the epoch

    def to_json(self) -> bytes:
        doc = {
            "format": MACHINE_CA_FORMAT,
            "cert_pem": self.cert_pem.decode(),
            "key_pem": self.key_pem.decode(),
            "leaf_key_pem": self.leaf_key_pem.decode(),
            "not_after": self.not_after,
        }
        return json.dumps(doc).encode()

    @staticmethod
    def from_json(data: bytes) -> CaMaterial | None:
        """The material, or None if `data` is not a whole, current-format file."""
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("format") != MACHINE_CA_FORMAT:
            return None
        pems = [doc.get(k) for k in ("cert_pem", "key_pem", "leaf_key_pem")]
        not_after = doc.get("not_after")
        if not all(isinstance(p, str) and p.startswith("-----BEGIN ") for p in pems):
            return None
        if not isinstance(not_after, int | float) or isinstance(not_after, bool):
            return None
        cert, key, leaf = (str(p).encode() for p in pems)
        if b"CERTIFICATE" not in cert.split(b"\n", 1)[0]:
            return None
        return CaMaterial(cert, key, leaf, float(not_after))


def generate_material() -> CaMaterial:
    """A fresh CA: key, self-signed certificate, and the leaves' key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    not_after = now + datetime.timedelta(days=CA_DAYS)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_COMMON_NAME))
        .issuer_name(_name(CA_COMMON_NAME))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=800))  # an established CA, not one made today
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),  # fmt: skip
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )

    def pem(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    return CaMaterial(
        cert.public_bytes(serialization.Encoding.PEM), pem(key), pem(leaf_key), not_after.timestamp()
    )


def machine_ca_dir() -> Path:
    return Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / "ca"


def _private_dir(folder: Path) -> bool:
    """`folder` exists (made if missing), is a real folder, ours, and closed to everyone else."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _read_private(path: Path) -> bytes | None:
    """The file's bytes if it is a regular file of ours that nobody else can read or write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        if st.st_size > _MAX_FILE:
            return None
        return os.read(fd, _MAX_FILE)
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """Atomically: a 0600 temp file beside `path`, renamed over it (readers see old or new, whole)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_machine_material(folder: Path | None = None) -> CaMaterial | None:
    """The machine CA, made (again) if missing, corrupt or expiring; None if `folder` is not
    private to us (then the caller makes a per-run CA, as before this cache existed)."""
    folder = folder or machine_ca_dir()
    try:
        if not _private_dir(folder):
            return None
    except OSError:
        return None
    path = folder / MACHINE_CA_FILE
    data = _read_private(path)
    found = CaMaterial.from_json(data) if data is not None else None
    if found is not None and found.not_after - _now().timestamp() > RENEW_DAYS * 86400:
        return found
    made = generate_material()
    with contextlib.suppress(OSError):  # a read-only cache: this run uses its CA all the same
        _write_private(path, made.to_json())
    return made


class CertAuthority:
    """A CA (key + self-signed certificate) and a cache of leaf server contexts.

    `CertAuthority()` makes a fresh one; `CertAuthority.for_machine()` the machine's, loaded
    without cryptography. The keys are parsed on the first leaf.
    """

    def __init__(self, alpn: Sequence[str] = ALPN, material: CaMaterial | None = None) -> None:
        self._material = material or generate_material()
        self.cert_pem = self._material.cert_pem
        self.alpn = tuple(alpn)
        self._lock = threading.Lock()
        # (CA key, CA cert, leaf key), parsed with the first leaf
        self._signer: (
            tuple[ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey] | None
        ) = None
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.minted = 0  # leaves minted (cache misses), for run.json and the benchmark

    @classmethod
    def for_machine(cls, alpn: Sequence[str] = ALPN, folder: Path | None = None) -> CertAuthority:
        return cls(alpn, load_machine_material(folder))

    @property
    def cert(self) -> x509.Certificate:
        return self._keys()[1]

    def _keys(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey]:
        with self._lock:
            if self._signer is None:
                from cryptography import x509
                from cryptography.hazmat.primitives import serialization
                from cryptography.hazmat.primitives.asymmetric import ec

                m = self._material
                key = serialization.load_pem_private_key(m.key_pem, None)
                leaf = serialization.load_pem_private_key(m.leaf_key_pem, None)
                if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
                    leaf, ec.EllipticCurvePrivateKey
                ):
                    raise ValueError("the CA's keys are not ECDSA keys")
                self._signer = (key, x509.load_pem_x509_certificate(m.cert_pem), leaf)
            return self._signer

    def leaf_pem(self, name: str) -> bytes:
        """A PEM certificate for `name` (a DNS name or an IP address), signed by this CA."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key, ca_cert, leaf_key = self._keys()
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            san = x509.DNSName(name)
        now = _now()
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "localhost")]))
            .issuer_name(ca_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS - 30))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def server_context(self, name: str) -> ssl.SSLContext:
        """A server-side SSLContext presenting a leaf for `name` (minted on first use, then cached)."""
        import ssl

        name = name.lower().rstrip(".")
        with self._lock:
            cached = self._contexts.get(name)
        if cached is not None:
            return cached
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_alpn_protocols(list(self.alpn))
        _load_chain(ctx, self.leaf_pem(name) + self.cert_pem, self._material.leaf_key_pem)
        with self._lock:
            self.minted += 1
            if len(self._contexts) < _MAX_CACHED:
                ctx = self._contexts.setdefault(name, ctx)
        return ctx


def _load_chain(ctx: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """load_cert_chain from memory: the PEMs go through memfds, never through the file system."""
    fds: list[int] = []
    try:
        for data in (chain_pem, key_pem):
            fd = os.memfd_create("osptrack-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, data)
        ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
