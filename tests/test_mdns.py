"""What the box announces with mDNS and the names its certificate covers (no packet sent: tests/lan sends them)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from opencall import mdns
from opencall.config import parse_config
from opencall.localca import LocalCA, certificate_names
from opencall.mdns import Announcement, avahi_running, host_label, local_name
from opencall.tls import CertificateKeeper, extra_names


@pytest.mark.parametrize(("hostname", "label"), [
    ("callbox", "callbox"),
    ("CallBox.lan", "callbox"),
    ("My_Box", "my-box"),
    ("raspberry pi 4", "raspberry-pi-4"),
    ("--odd--name--", "odd-name"),
    ("x" * 70, "x" * 63),
    ("___", "opencall"),
    ("", "opencall"),
])
def test_auto_name_is_the_hostname_as_one_dns_label(hostname: str, label: str) -> None:
    assert host_label(hostname) == label


def test_the_configured_name_or_this_hosts(tmp_path: Path) -> None:
    assert local_name(parse_config({"mdns": {"name": "callbox"}}, tmp_path).mdns) == "callbox"
    assert local_name(parse_config({}, tmp_path).mdns) == host_label(socket.gethostname())


def test_https_service_with_path_txt_and_the_name_as_server(tmp_path: Path) -> None:
    config = parse_config({"server": {"port": 9443}, "mdns": {"enabled": True, "name": "callbox"}}, tmp_path)
    announcement = Announcement.from_config(config)
    assert announcement.url == "https://callbox.local:9443/"
    info = announcement.service_info(["192.168.1.20", "fd00::20"])
    assert (info.type, info.name, info.server, info.port) == (
        "_https._tcp.local.", "OpenCall on callbox._https._tcp.local.", "callbox.local.", 9443)
    assert info.decoded_properties == {"path": "/"}
    assert info.parsed_addresses() == ["192.168.1.20", "fd00::20"]


def test_plain_http_is_announced_as_http(tmp_path: Path) -> None:
    config = parse_config({"server": {"tls": "off"}, "mdns": {"enabled": True, "name": "callbox"}}, tmp_path)
    announcement = Announcement.from_config(config)
    assert (announcement.service_type, announcement.url) == ("_http._tcp.local.", "http://callbox.local:8443/")


def test_avahi_is_detected_by_its_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "avahi-daemon" / "socket"
    monkeypatch.setattr(mdns, "AVAHI_SOCKET", path)
    assert not avahi_running()
    path.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert avahi_running()


def test_the_certificate_covers_the_announced_name(tmp_path: Path) -> None:
    plain = parse_config({"mdns": {"name": "callbox"}}, tmp_path)
    assert "callbox.local" not in extra_names(plain)  # not announced: not needed
    config = parse_config({"mdns": {"enabled": True, "name": "callbox"}}, tmp_path)
    assert "callbox.local" in extra_names(config)
    CertificateKeeper(config)
    cert = LocalCA.in_data_dir(config.data_dir).read_server_certificate()
    assert cert is not None
    names = certificate_names(cert).dns
    assert "callbox.local" in names
    assert f"{socket.gethostname().lower().split('.')[0]}.local" in names  # the hostname's stays


def test_the_certificate_covers_the_auto_name_when_it_differs_from_the_hostname(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "My_Box")  # not a DNS label: only its mDNS form is
    config = parse_config({"mdns": {"enabled": True}}, tmp_path)
    CertificateKeeper(config)
    cert = LocalCA.in_data_dir(config.data_dir).read_server_certificate()
    assert cert is not None
    assert "my-box.local" in certificate_names(cert).dns
