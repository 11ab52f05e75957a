"""The machine's CA (fakenet/ca.py) and the trust stores' reading of it without cryptography."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from osptrack.sandbox import trust
from osptrack.sandbox.fakenet import ca as ca_mod
from osptrack.sandbox.fakenet.ca import MACHINE_CA_FILE, CertAuthority, load_machine_material


def test_made_once_private_and_reused(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    first = CertAuthority.for_machine(folder=folder)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    path = folder / MACHINE_CA_FILE
    assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == os.geteuid()
    assert CertAuthority.for_machine(folder=folder).cert_pem == first.cert_pem
    assert b"PRIVATE KEY" not in first.cert_pem
    assert [p.name for p in folder.iterdir()] == [MACHINE_CA_FILE]  # no temp file left


def test_loading_the_machine_ca_imports_no_cryptography(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    made = CertAuthority.for_machine(folder=folder).cert_pem
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from osptrack.sandbox.fakenet.ca import CertAuthority\nfrom osptrack.sandbox import trust\n"
        f"ca = CertAuthority.for_machine(folder=Path({str(folder)!r}))\n"
        "trust.subject_hash(ca.cert_pem); trust.plant_mono(ca.cert_pem, Path(sys.argv[1]), (-1, -1))\n"
        "sys.stdout.write(ca.cert_pem.decode())\n"
        "assert not [m for m in sys.modules if m.startswith('cryptography')], 'cryptography imported'\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.encode() == made


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b'{"format": 1, "cert_pem": "-----BEGIN CERT'),  # torn
        lambda p: p.write_bytes(b"not json at all"),
        lambda p: p.unlink(),
        lambda p: p.write_bytes(json.dumps({**json.loads(p.read_bytes()), "format": 99}).encode()),
    ],
)
def test_a_missing_or_corrupt_file_is_made_again(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "ca"
    old = CertAuthority.for_machine(folder=folder).cert_pem
    damage(folder / MACHINE_CA_FILE)
    new = CertAuthority.for_machine(folder=folder)
    assert new.cert_pem != old
    assert CertAuthority.for_machine(folder=folder).cert_pem == new.cert_pem  # and kept


def test_an_expiring_ca_is_made_again(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    old = CertAuthority.for_machine(folder=folder).cert_pem
    path = folder / MACHINE_CA_FILE
    doc = json.loads(path.read_bytes())
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=ca_mod.RENEW_DAYS - 1)
    path.write_bytes(json.dumps({**doc, "not_after": soon.timestamp()}).encode())
    assert CertAuthority.for_machine(folder=folder).cert_pem != old
    # the new one outlives every leaf it can sign
    cert = x509.load_pem_x509_certificate(CertAuthority.for_machine(folder=folder).cert_pem)
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert left > datetime.timedelta(days=ca_mod.LEAF_DAYS)


def test_a_file_or_folder_others_can_reach_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    CertAuthority.for_machine(folder=folder)
    path = folder / MACHINE_CA_FILE
    planted = path.read_bytes()
    path.chmod(0o644)  # readable by others: its key may be known
    material = load_machine_material(folder)
    assert material is not None and material.to_json() != planted  # made again, written 0600
    assert path.stat().st_mode & 0o777 == 0o600
    folder.chmod(0o755)  # a folder others can list (or, owned by another user, write)
    assert load_machine_material(folder) is None
    # ...then the network makes a per-run CA, as before the cache: two differ
    assert CertAuthority(material=load_machine_material(folder)).cert_pem != CertAuthority().cert_pem


def test_a_symlinked_file_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    CertAuthority.for_machine(folder=folder)
    elsewhere = tmp_path / "other.json"
    path = folder / MACHINE_CA_FILE
    elsewhere.write_bytes(path.read_bytes())
    elsewhere.chmod(0o600)
    path.unlink()
    path.symlink_to(elsewhere)
    made = load_machine_material(folder)
    assert made is not None and made.to_json() != elsewhere.read_bytes()
    assert not path.is_symlink()  # replaced by a file of our own


def _handshake(ca: CertAuthority, name: str) -> dict:  # type: ignore[type-arg]
    server_ctx = ca.server_context(name)
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    a, b = socket.socketpair()
    done: dict = {}  # type: ignore[type-arg]

    def serve() -> None:
        with server_ctx.wrap_socket(a, server_side=True) as s:
            s.recv(1)

    t = threading.Thread(target=serve)
    t.start()
    with client_ctx.wrap_socket(b, server_hostname=name) as c:
        done = c.getpeercert()
        c.sendall(b"x")
    t.join(10)
    return done


def test_a_machine_ca_leaf_verifies_against_its_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    CertAuthority.for_machine(folder=folder)
    ca = CertAuthority.for_machine(folder=folder)  # loaded from the file: keys parsed on this leaf
    peer = _handshake(ca, "pypi.example.com")
    assert ("DNS", "pypi.example.com") in peer["subjectAltName"]
    assert ca.minted == 1
    peer_ip = _handshake(ca, "203.0.113.9")
    assert ("IP Address", "203.0.113.9") in peer_ip["subjectAltName"]


def _cert(subject: x509.Name) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.PEM)
    )


SUBJECTS = [
    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corporate Inspection Root CA G2")]),
    x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),  # PrintableString
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "  IT   Security  SERVICES "),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "Root@Example.COM"),  # IA5String
        ]
    ),
    x509.Name(
        [
            x509.RelativeDistinguishedName(  # a multi-valued RDN: its members sorted by DER
                [
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Zeta"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Ünïcode Root"),
                ]
            )
        ]
    ),
]


@pytest.mark.parametrize("subject", SUBJECTS, ids=["ca", "mixed-strings", "multi-valued-rdn"])
def test_subject_hash_and_key_id_match_openssl(subject: x509.Name) -> None:
    pem = _cert(subject)
    openssl = subprocess.run(
        ["openssl", "x509", "-noout", "-subject_hash"], input=pem, capture_output=True, check=True
    )
    assert trust.subject_hash(pem) == openssl.stdout.decode().strip()
    cert = x509.load_pem_x509_certificate(pem)
    assert trust.pem_to_der(pem) == cert.public_bytes(Encoding.DER)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert trust.subject_key_id(trust.pem_to_der(pem)) == ski


def test_a_certificate_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError):
        trust.subject_hash(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError):
        trust.pem_to_der(b"no certificate here")
