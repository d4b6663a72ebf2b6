"""Helpers of the appliance tests: Debian tools, the opencall command, certificates made for tests."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
# Debian packages these tests use; scripts/test installs them too (apt_install line).
DEBIAN_TOOLS = {"dpkg-deb": "dpkg-dev", "lintian": "lintian", "systemd-analyze": "systemd", "strip": "binutils",
                "setpriv": "util-linux"}


def ensure_debian_tools() -> None:
    """Install the Debian packages of missing tools with apt-get (the tests never skip for want of them)."""
    missing = sorted({pkg for tool, pkg in DEBIAN_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


def opencall(*args: str, config: Path | None = None, stdin: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the development install's ``opencall`` command."""
    argv = [sys.executable, "-m", "opencall", *args]
    if config is not None:
        argv += ["--config", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "OPENCALL_CONFIG"}
    return subprocess.run(argv, input=stdin or "", capture_output=True, text=True, timeout=timeout, cwd="/",
                          env=env)


def self_signed(cert_path: Path, key_path: Path, common_name: str) -> x509.Certificate:
    """Write a self-signed certificate for 127.0.0.1 (an operator's own certificate, for tests)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def http_get(url: str, **kwargs: object) -> httpx.Response:
    """GET with a timeout that survives a busy 2-core machine."""
    return httpx.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]
