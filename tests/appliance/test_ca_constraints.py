"""The local CA vouches only for the box (issue 13): OpenSSL and Chromium refuse what it signs for other sites,
accept the box's own certificate, and the page, the REST API and ``opencall doctor`` show the fingerprint
that ``openssl`` computes from the served /ca.crt."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from opencall.config import parse_config
from opencall.localca import LocalCA, Names, common_name, fingerprint, issue_server_certificate
from opencall.tls import CertificateKeeper
from tests.appliance.oldca import write_unconstrained_ca
from tests.appliance.tools import http_get
from tests.lan.phones import trust_ca
from tests.support import Server, run_cli
from tests.web.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PHONE

# Certificates a stolen CA key would be used for: a public name, a public IPv4 and a global IPv6 address, and
# each of them beside a name the CA may vouch for (one name outside is enough to refuse the certificate).
OUTSIDE = {
    "example.com": Names.of(["example.com"], []),
    "8.8.8.8": Names.of([], ["8.8.8.8"]),
    "2001:4860:4860::8888": Names.of([], ["2001:4860:4860::8888"]),
    "127.0.0.1+example.com": Names.of(["example.com"], ["127.0.0.1"]),
    "127.0.0.1+8.8.8.8": Names.of([], ["127.0.0.1", "8.8.8.8"]),
    "127.0.0.1+2001:db8::1": Names.of([], ["127.0.0.1", "2001:db8::1"]),
}


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _openssl_verify(ca: Path, leaf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(leaf)], capture_output=True, text=True,
                          timeout=30)


def _openssl_fingerprint(pem: bytes, folder: Path) -> str:
    """``openssl x509 -fingerprint -sha256`` of a certificate: ``AB:CD:…``."""
    path = folder / "fingerprinted.crt"
    path.write_bytes(pem)
    output = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-fingerprint", "-sha256"],
                            capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    label, _, value = output.partition("=")
    assert label.lower() == "sha256 fingerprint", output
    return value


def _box(tmp_path: Path) -> LocalCA:
    """A box's tls folder as ``tls: auto`` makes it, with a LAN address advertised."""
    config = parse_config({"server": {"tls": "auto"}, "turn": {"advertise": "192.168.1.20"}}, tmp_path)
    CertificateKeeper(config)
    return LocalCA.in_data_dir(config.data_dir)


def _sign(local: LocalCA, names: Names, folder: Path, name: str) -> tuple[Path, Path]:
    """A leaf for ``names`` signed with the box's CA key (what whoever copies the data dir could make)."""
    ca, key = local.load_ca()
    leaf, leaf_key = issue_server_certificate(ca, key, names)
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(_pem(leaf))
    key_path.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return cert_path, key_path


def test_openssl_refuses_certificates_for_other_sites_and_accepts_the_box(tmp_path: Path) -> None:
    local = _box(tmp_path)
    assert shutil.which("openssl"), "the openssl command is needed (apt-get install openssl)"
    own = _openssl_verify(local.ca_cert_path, local.cert_path)
    assert own.returncode == 0 and own.stdout.strip().endswith(": OK"), own.stdout + own.stderr
    lan = _sign(local, Names.of(["callbox.local", "callbox.home.arpa"], ["10.1.2.3", "172.16.5.5", "100.64.0.9",
                                                                         "169.254.1.1", "fd42::5", "fe80::1"]),
                tmp_path, "lan")[0]
    assert _openssl_verify(local.ca_cert_path, lan).returncode == 0
    for label, names in OUTSIDE.items():
        leaf = _sign(local, names, tmp_path, "outside")[0]
        result = _openssl_verify(local.ca_cert_path, leaf)
        assert result.returncode != 0, label
        assert "permitted subtree violation" in result.stdout + result.stderr, (label, result.stdout + result.stderr)


def test_openssl_fingerprint_of_the_served_ca_is_on_the_api_and_in_doctor(
        make_server: Callable[..., Server], tmp_path: Path) -> None:
    server = make_server({"server": {"tls": "auto"}})
    served = http_get(f"{server.base_url}/ca.crt", verify=False)
    assert served.status_code == 200
    expected = _openssl_fingerprint(served.content, tmp_path)
    info = http_get(f"{server.base_url}/api/server-info", verify=False).json()
    assert set(info) == {"tls", "version", "ca", "previousCa"} and info["tls"] == "auto"
    assert info["ca"]["fingerprint"] == expected
    assert info["ca"]["name"].startswith("OpenCall local CA (")
    assert {"local", "localhost", "192.168.0.0/16", "fc00::/7"} <= set(info["ca"]["permitted"])
    assert info["previousCa"] is None
    doctor = run_cli("doctor", config=server.config_path)
    line = next(line for line in doctor.stdout.splitlines() if "local CA" in line)
    assert line.split()[0] == "PASS" and f"SHA-256 fingerprint {expected}" in line, doctor.stdout


def test_a_box_with_an_old_ca_migrates_and_its_trust_page_says_so(
        make_server: Callable[..., Server], tmp_path: Path) -> None:
    """An install of an older version (unconstrained CA, a server certificate from it) upgraded in place; the
    trust page, opened on a phone-sized Chromium that trusts the new CA, shows both fingerprints."""
    data = tmp_path / "srv" / "data"  # make_server's folder and test_config's data_dir
    old, _ = write_unconstrained_ca(data / "tls")
    old_file = tmp_path / "old-ca.crt"
    old_file.write_bytes(_pem(old))
    server = make_server({"server": {"tls": "auto"}})
    assert server.data_dir == data
    assert "local CA replaced: the local CA had no name constraints" in server.log_file.read_text()
    info = http_get(f"{server.base_url}/api/server-info", verify=False).json()
    assert info["previousCa"]["fingerprint"] == fingerprint(old)
    assert info["previousCa"]["name"] == common_name(old)
    assert info["previousCa"]["permitted"] is None  # it vouched for anything
    new_pem = http_get(f"{server.base_url}/ca.crt", verify=False).text
    assert info["ca"]["fingerprint"] == _openssl_fingerprint(new_pem.encode(), tmp_path)
    assert info["ca"]["fingerprint"] != fingerprint(old)
    # The served certificate is the new CA's: clients that trust it connect, those that trust the old one do not.
    assert http_get(f"{server.base_url}/healthz", verify=ssl.create_default_context(cadata=new_pem)).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        http_get(f"{server.base_url}/healthz", verify=ssl.create_default_context(cafile=str(old_file)))
    doctor = run_cli("doctor", config=server.config_path)
    assert "PASS  local CA" in doctor.stdout and info["ca"]["fingerprint"] in doctor.stdout, doctor.stdout

    home = tmp_path / "home"
    trust_ca(home, server.data_dir / "tls" / "ca.crt")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             env={"HOME": str(home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        try:
            page = browser.new_page(viewport=PHONE)
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.goto(f"{server.base_url}/trust")  # over HTTPS the browser trusts: no certificate error
            shown = page.locator("p[data-fingerprint]")
            expect(shown).to_have_attribute("data-fingerprint", info["ca"]["fingerprint"])
            assert shown.inner_text().replace("\n", ":") == info["ca"]["fingerprint"]
            notice = page.get_by_role("alert")
            expect(notice).to_contain_text("This box has a new certificate authority")
            expect(notice).to_contain_text("The old one could vouch for any website; the new one only for this box.")
            expect(notice.locator("[data-fingerprint]")).to_have_attribute("data-fingerprint", fingerprint(old))
            assert notice.locator("[data-fingerprint]").inner_text().replace(" ", ":") == fingerprint(old)
            ios = "Settings → General → VPN & Device Management → the OpenCall profile → More Details"
            expect(page.get_by_text(ios)).to_be_visible()
            expect(page.get_by_text("Encryption & credentials → User credentials").first).to_be_visible()
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "trust-migrated-ca-phone.png"), full_page=True)
            assert not problems, problems
        finally:
            browser.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """No access log on the test's stderr."""


@contextmanager
def _https(cert: Path, key: Path, root: Path) -> Iterator[int]:
    """A tiny HTTPS server on 127.0.0.1 serving ``root`` with the given certificate; yields its port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def test_chromium_trusting_the_ca_refuses_certificates_for_other_sites(
        make_server: Callable[..., Server], tmp_path: Path) -> None:
    """Real trust: the CA is added to a fresh NSS database in the browser's HOME, as a phone's user does."""
    assert CHROMIUM.exists(), f"{CHROMIUM} not found (apt-get install -y chromium)"
    server = make_server({"server": {"tls": "auto"}})
    local = LocalCA.in_data_dir(server.data_dir)
    home = tmp_path / "home"
    trust_ca(home, local.ca_cert_path)
    # The control: an unconstrained CA of an older version, trusted the same way, whose example.com loads.
    unconstrained = LocalCA(tmp_path / "old-tls")
    write_unconstrained_ca(unconstrained.folder)
    trust_ca(home, unconstrained.ca_cert_path, nickname="OpenCall local CA of an older version")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>ok</title><p id=ok>trusted</p>")
    certs = tmp_path / "certs"
    certs.mkdir()
    good = _sign(local, Names.of(["localhost"], ["127.0.0.1"]), certs, "good")
    # A public IP alone would fail on 127.0.0.1 for its name anyway: those go beside 127.0.0.1.
    bad = {label: _sign(local, names, certs, f"bad{i}") for i, (label, names) in enumerate(OUTSIDE.items())
           if label == "example.com" or "+" in label}
    control = _sign(unconstrained, OUTSIDE["example.com"], certs, "control")
    with sync_playwright() as playwright:
        # example.com and the box's .local name are resolved to 127.0.0.1 by the browser: nothing leaves the machine.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP example.com 127.0.0.1, MAP *.local 127.0.0.1"],
            env={"HOME": str(home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        try:
            page = browser.new_page()
            # The box itself, by address and by its names.
            port = server.config["server"]["port"]
            for url in (f"{server.base_url}/healthz", f"https://localhost:{port}/healthz",
                        f"https://{socket.gethostname().lower().split('.')[0]}.local:{port}/healthz"):
                response = page.goto(url)
                assert response is not None and response.ok, url
            with _https(*good, site) as port:
                response = page.goto(f"https://127.0.0.1:{port}/")
                assert response is not None and response.ok
                assert page.locator("#ok").inner_text() == "trusted"
            with _https(*control, site) as port:
                response = page.goto(f"https://example.com:{port}/")
                assert response is not None and response.ok  # what the constraints now prevent
            for label, (cert, key) in bad.items():
                with _https(cert, key, site) as port:
                    host = "example.com" if label == "example.com" else "127.0.0.1"
                    # Chromium's own verifier reports a name constraint violation as ERR_CERT_INVALID.
                    with pytest.raises(PlaywrightError, match=r"ERR_CERT_(INVALID|NAME_CONSTRAINT_VIOLATION) "):
                        page.goto(f"https://{host}:{port}/")
        finally:
            browser.close()
