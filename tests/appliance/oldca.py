"""The local CA as OpenCall made it before name constraints (issue 13): to test the migration of old installs."""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opencall.localca import LocalCA, host_names, issue_server_certificate


def write_unconstrained_ca(folder: Path) -> tuple[x509.Certificate, bytes]:
    """Write an old version's ``tls`` folder (a CA without NameConstraints and a server certificate it signed)
    into ``folder``; returns the CA certificate and its key's PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenCall"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"OpenCall local CA ({socket.gethostname()})")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400)).not_valid_after(now + datetime.timedelta(days=3000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    local = LocalCA(folder)
    folder.mkdir(parents=True, exist_ok=True)
    local.ca_key_path.write_bytes(key_pem)
    local.ca_cert_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf, leaf_key = issue_server_certificate(ca, key, host_names())  # every address, public ones too, as before
    local.cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    local.key_path.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return ca, key_pem
