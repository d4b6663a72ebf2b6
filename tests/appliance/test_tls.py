"""HTTPS: the local CA of ``tls: auto``, re-issue rules, /ca.crt, and the operator's files reloaded on SIGHUP."""

from __future__ import annotations

import datetime
import signal
import socket
import ssl
import stat
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opencall.config import parse_config
from opencall.localca import LocalCA, certificate_names, host_names, interface_addresses, issue_server_certificate
from opencall.tls import CertificateKeeper, server_ssl_context
from tests.appliance.tools import http_get, self_signed
from tests.support import Server


def _served(port: int) -> x509.Certificate:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=30)
    return x509.load_pem_x509_certificate(pem.encode())


def test_auto_makes_a_ca_once_and_a_server_certificate_for_every_name(tmp_path: Path) -> None:
    config = parse_config({"server": {"tls": "auto"}, "turn": {"advertise": "192.0.2.77"}}, tmp_path)
    keeper = CertificateKeeper(config)
    local = LocalCA.in_data_dir(config.data_dir)
    assert stat.S_IMODE(local.ca_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(local.key_path.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(local.ca_cert_path.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert = local.read_server_certificate()
    assert cert is not None
    cert.verify_directly_issued_by(ca)
    names = certificate_names(cert)
    host = socket.gethostname().lower().split(".")[0]
    assert {host, f"{host}.local", "localhost"} <= set(names.dns)
    assert {"127.0.0.1", "::1", "192.0.2.77"} <= set(names.ips)
    assert set(interface_addresses()) <= set(names.ips)
    assert keeper.refresh() is None  # nothing changed: not re-issued
    assert local.read_server_certificate() == cert

    # Another advertised address: re-issued by the same CA, which is never remade.
    ca_bytes = local.ca_cert_path.read_bytes()
    moved = parse_config({"server": {"tls": "auto"}, "turn": {"advertise": "198.51.100.8"}}, tmp_path)
    assert CertificateKeeper(moved).refresh() is None  # the constructor already re-issued it
    renewed = local.read_server_certificate()
    assert renewed is not None and renewed != cert
    assert "198.51.100.8" in certificate_names(renewed).ips
    renewed.verify_directly_issued_by(ca)
    assert local.ca_cert_path.read_bytes() == ca_bytes


def test_a_certificate_near_expiry_or_from_another_ca_is_reissued(tmp_path: Path) -> None:
    local = LocalCA(tmp_path / "tls")
    names = host_names()
    assert local.ensure_server_certificate(names) == "there was none"
    assert local.ensure_server_certificate(names) is None
    ca, ca_key = local.load_or_create_ca()
    # A certificate from our CA that ends in 10 days.
    cert, key = issue_server_certificate(ca, ca_key, names)
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    short = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(cert.not_valid_before_utc).not_valid_after(soon)
             .add_extension(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
             .sign(ca_key, cert.signature_hash_algorithm))  # type: ignore[arg-type]
    local.cert_path.write_bytes(short.public_bytes(serialization.Encoding.PEM))
    assert "expires" in (local.ensure_server_certificate(names) or "")
    # The old self-signed certificate of earlier versions: replaced by one from the CA.
    self_signed(local.cert_path, local.key_path, "old")
    assert local.ensure_server_certificate(names) == "it was not issued by the local CA"


def test_the_relay_gets_the_same_context_object(tmp_path: Path) -> None:
    config = parse_config({"data_dir": str(tmp_path / "d")}, tmp_path)
    context = server_ssl_context(config)
    assert isinstance(context, ssl.SSLContext) and server_ssl_context(config) is context
    assert server_ssl_context(parse_config({"server": {"tls": "off"}}, tmp_path)) is None


def test_ca_certificate_is_served_and_the_server_certificate_verifies_against_it(
        make_server: Callable[..., Server]) -> None:
    server = make_server({"server": {"tls": "auto"}})
    response = http_get(f"{server.base_url}/ca.crt", verify=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-x509-ca-cert"
    assert response.content == (server.data_dir / "tls" / "ca.crt").read_bytes()
    # A client that trusts only our CA accepts the server by its IP address.
    trusting = ssl.create_default_context(cadata=response.text)
    assert http_get(f"{server.base_url}/healthz", verify=trusting).json()["database"] == "ok"


def test_ca_certificate_is_not_served_without_tls_auto(server: Server) -> None:
    with server.client() as client:
        assert client.get("/ca.crt").status_code == 404


def test_operator_files_are_reloaded_on_sighup(make_server: Callable[..., Server], tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = self_signed(cert_path, key_path, "first")
    server = make_server({"server": {"tls": {"cert": str(cert_path), "key": str(key_path)}}})
    port = server.config["server"]["port"]
    assert _served(port) == first

    second = self_signed(cert_path, key_path, "second")  # a renewal writes new files in place
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while _served(port) != second:
        assert time.monotonic() < deadline, "the renewed certificate was not served after SIGHUP"
        time.sleep(0.1)
    assert server.proc.poll() is None

    # Unusable files: the error is logged and the previous certificate stays in service.
    key_path.write_text("not a key")
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "certificate reload failed" not in server.log_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _served(port) == second
    assert http_get(f"{server.base_url}/api/auth/me", verify=False).status_code == 200
