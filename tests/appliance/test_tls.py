"""HTTPS: the local CA of ``tls: auto``, re-issue rules, /ca.crt, and the operator's files reloaded on SIGHUP."""

from __future__ import annotations

import datetime
import logging
import signal
import socket
import ssl
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opencall.config import parse_config
from opencall.localca import (
    PERMITTED_NETWORKS,
    STANDING_DOMAINS,
    TRANSITION,
    LocalCA,
    Permits,
    certificate_names,
    fingerprint,
    host_names,
    interface_addresses,
    issue_server_certificate,
    signed_by,
)
from opencall.tls import CertificateKeeper, server_ssl_context
from tests.appliance.oldca import write_unconstrained_ca
from tests.appliance.tools import http_get
from tests.support import Server, self_signed


def _served(port: int) -> x509.Certificate:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=30)
    return x509.load_pem_x509_certificate(pem.encode())


def _ca(local: LocalCA) -> x509.Certificate:
    return x509.load_pem_x509_certificate(local.ca_cert_path.read_bytes())


def test_auto_makes_a_ca_once_and_a_server_certificate_for_every_name(tmp_path: Path) -> None:
    config = parse_config({"server": {"tls": "auto"}, "turn": {"advertise": "192.168.77.7"}}, tmp_path)
    keeper = CertificateKeeper(config)
    local = LocalCA.in_data_dir(config.data_dir)
    assert stat.S_IMODE(local.ca_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(local.key_path.stat().st_mode) == 0o600
    ca = _ca(local)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert = local.read_server_certificate()
    assert cert is not None
    cert.verify_directly_issued_by(ca)
    names = certificate_names(cert)
    host = socket.gethostname().lower().split(".")[0]
    assert {host, f"{host}.local", "localhost"} <= set(names.dns)
    assert {"127.0.0.1", "::1", "192.168.77.7"} <= set(names.ips)
    # Every private, loopback and link-local address of the interfaces; public ones are left out.
    permits = Permits.of_ca(ca)
    assert permits is not None
    assert set(names.ips) == {ip for ip in [*interface_addresses(), "127.0.0.1", "::1", "192.168.77.7"]
                              if permits.allows_ip(ip)}
    assert keeper.refresh() is None  # nothing changed: not re-issued
    assert local.read_server_certificate() == cert

    # Another advertised address: re-issued by the same CA, which is never remade.
    ca_bytes = local.ca_cert_path.read_bytes()
    moved = parse_config({"server": {"tls": "auto"}, "turn": {"advertise": "10.9.8.7"}}, tmp_path)
    assert CertificateKeeper(moved).refresh() is None  # the constructor already re-issued it
    renewed = local.read_server_certificate()
    assert renewed is not None and renewed != cert
    assert "10.9.8.7" in certificate_names(renewed).ips and "192.168.77.7" not in certificate_names(renewed).ips
    renewed.verify_directly_issued_by(ca)
    # A public address cannot be vouched for: left out of the certificate, the CA stays.
    public = parse_config({"server": {"tls": "auto"}, "turn": {"advertise": "198.51.100.8"}}, tmp_path)
    CertificateKeeper(public)
    last = local.read_server_certificate()
    assert last is not None and "198.51.100.8" not in certificate_names(last).ips
    assert local.ca_cert_path.read_bytes() == ca_bytes
    assert not local.legacy_ca_cert_path.exists()


def test_the_ca_is_name_constrained_to_the_box(tmp_path: Path) -> None:
    config = parse_config({"server": {"tls": "auto", "public_url": "https://call.example.net:8443"}}, tmp_path)
    CertificateKeeper(config)
    local = LocalCA.in_data_dir(config.data_dir)
    extension = _ca(local).extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.critical
    assert extension.value.excluded_subtrees is None
    permitted = extension.value.permitted_subtrees or []
    domains = {n.value for n in permitted if isinstance(n, x509.DNSName)}
    host = socket.gethostname().lower()
    assert {"local", "localhost", "home.arpa", "internal", "call.example.net", host} <= domains
    assert all(d == host.split(".")[0] or d in {host, "call.example.net", *STANDING_DOMAINS} for d in domains)
    networks = {n.value for n in permitted if isinstance(n, x509.IPAddress)}
    assert networks == set(PERMITTED_NETWORKS)
    assert {str(n) for n in networks} == {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                          "127.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10", "fc00::/7"}
    cert = local.read_server_certificate()
    assert cert is not None and "call.example.net" in certificate_names(cert).dns


def test_a_name_outside_the_ca_replaces_it(tmp_path: Path) -> None:
    local = LocalCA(tmp_path / "tls")
    names = host_names()
    assert local.ensure_server_certificate(names) == "there was none"
    first = local.ca_cert_path.read_bytes()
    renamed = host_names(["callbox.home.arpa"])  # under a standing domain: the same CA vouches for it
    assert local.ensure_server_certificate(renamed) == "this host's names or addresses changed"
    assert local.ca_cert_path.read_bytes() == first
    outside = host_names(["call.example.org"])
    assert local.ensure_server_certificate(outside) == "the local CA cannot vouch for call.example.org"
    assert local.legacy_ca_cert_path.read_bytes() == first
    cert = local.read_server_certificate()
    assert cert is not None and "call.example.org" in certificate_names(cert).dns
    cert.verify_directly_issued_by(_ca(local))


def test_an_unconstrained_ca_of_an_older_version_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config({"server": {"tls": "auto"}}, tmp_path)
    local = LocalCA.in_data_dir(config.data_dir)
    old, old_key = write_unconstrained_ca(local.folder)
    with caplog.at_level(logging.INFO, logger="opencall.tls"):
        CertificateKeeper(config)
    new = _ca(local)
    assert new != old and Permits.of_ca(new) is not None
    assert "local CA replaced: the local CA had no name constraints" in caplog.text
    assert fingerprint(new) in caplog.text
    # The old certificate is kept for the trust page; its key is gone from the folder.
    assert local.legacy_ca_cert_path.read_bytes() == old.public_bytes(serialization.Encoding.PEM)
    assert all(old_key not in path.read_bytes() for path in local.folder.iterdir())
    ca, key = local.load_ca()
    assert key.public_key().public_numbers() == ca.public_key().public_numbers()  # type: ignore[union-attr]
    cert = local.read_server_certificate()
    assert cert is not None and signed_by(cert, new) and not signed_by(cert, old)
    # Named during the transition, then no more.
    assert local.legacy_ca() == old
    later = datetime.datetime.now(datetime.UTC) + TRANSITION + datetime.timedelta(days=1)
    assert local.legacy_ca(later) is None
    # Replaced once: the next start keeps the new CA.
    CertificateKeeper(config).refresh()
    assert _ca(local) == new


def test_a_certificate_near_expiry_or_from_another_ca_is_reissued(tmp_path: Path) -> None:
    local = LocalCA(tmp_path / "tls")
    names = host_names()
    assert local.ensure_server_certificate(names) == "there was none"
    assert local.ensure_server_certificate(names) is None
    ca, ca_key = local.load_ca()
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


@pytest.mark.slow  # seconds of its own: left out of the quick loop
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
