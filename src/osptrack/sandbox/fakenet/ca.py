"""The per-run certificate authority of the fake network, and the leaf certificates it mints.

The CA's private key is made in the osptrack process for one run and never leaves it: only the
certificate (`cert_pem`) is written into the sandbox's trust stores (see sandbox/trust.py). Leaf
certificates are minted on demand, one per SNI name (or per destination address when a client
sends no SNI), and cached as ready `ssl.SSLContext`s. All leaves share one key pair, made once per
CA: minting is then one ECDSA signature (about a millisecond, see benchmarks/tls.py) instead of
a key generation per name.

ECDSA P-256 throughout: every TLS stack a package may bring supports it, and it is far cheaper to
make and to sign with than RSA. The names are those of an ordinary corporate inspection CA, the
kind a real workstation behind a TLS-inspecting proxy has installed; nothing says "sandbox".

`ssl.SSLContext.load_cert_chain` only reads files, so the leaf PEM goes through an anonymous
memfd (`/proc/self/fd/N`), which is never on disk and is closed right after loading.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import threading
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "Corporate Inspection Root CA G2"
CA_ORGANIZATION = "IT Security Services"
ALPN = ("http/1.1",)
LEAF_DAYS = 397  # the CA/Browser Forum maximum: what real leaves have
_MAX_CACHED = 4096  # names a package can make us mint; beyond it leaves are minted but not kept


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CertAuthority:
    """A fresh CA (key + self-signed certificate) and a cache of leaf server contexts."""

    def __init__(self, alpn: Sequence[str] = ALPN) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key_pem = self._leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        now = _now()
        public = self._key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(CA_COMMON_NAME))
            .issuer_name(_name(CA_COMMON_NAME))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=800))  # an established CA, not one made today
            .not_valid_after(now + datetime.timedelta(days=3650))
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
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.alpn = tuple(alpn)
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.minted = 0  # leaves minted (cache misses), for run.json and the benchmark

    def leaf_pem(self, name: str) -> bytes:
        """A PEM certificate for `name` (a DNS name or an IP address), signed by this CA."""
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            san = x509.DNSName(name)
        now = _now()
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "localhost")]))
            .issuer_name(self.cert.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS - 30))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def server_context(self, name: str) -> ssl.SSLContext:
        """A server-side SSLContext presenting a leaf for `name` (minted on first use, then cached)."""
        name = name.lower().rstrip(".")
        with self._lock:
            cached = self._contexts.get(name)
        if cached is not None:
            return cached
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_alpn_protocols(list(self.alpn))
        _load_chain(ctx, self.leaf_pem(name) + self.cert_pem, self._leaf_key_pem)
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
