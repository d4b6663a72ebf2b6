"""The HTTPS certificate: the operator's files, or one made in data_dir for ``tls: auto``."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opencall.config import Config

CERT_FILE, KEY_FILE = "tls/server.crt", "tls/server.key"
VALIDITY = datetime.timedelta(days=397)  # the longest lifetime browsers accept for a server certificate


def _names(advertise_ips: list[str]) -> list[x509.GeneralName]:
    host = socket.gethostname()
    dns = dict.fromkeys([host, f"{host}.local", "localhost"])
    ips = dict.fromkeys(["127.0.0.1", "::1", *advertise_ips])
    return [x509.DNSName(name) for name in dns] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def make_self_signed(cert_path: Path, key_path: Path, addresses: list[str]) -> None:
    """Write a self-signed ECDSA P-256 server certificate for this host's names and ``addresses``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"OpenCall on {socket.gethostname()}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_names(addresses)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def certificate_files(config: Config, addresses: list[str]) -> tuple[Path, Path] | None:
    """(cert, key) for the HTTPS server, made on first use for ``tls: auto``; None when TLS is off."""
    tls = config.server.tls
    if tls.mode == "off":
        return None
    if tls.mode == "files":
        assert tls.cert is not None and tls.key is not None
        return tls.cert, tls.key
    cert_path, key_path = config.data_dir / CERT_FILE, config.data_dir / KEY_FILE
    if not cert_path.exists() or not key_path.exists():
        make_self_signed(cert_path, key_path, addresses)
    return cert_path, key_path
