"""systemd/opencall.service: ``systemd-analyze verify`` passes and the hardening of the issue is there."""

from __future__ import annotations

import shlex
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from tests.appliance.tools import REPO, ensure_debian_tools
from tests.support import Server, self_signed

UNIT = REPO / "systemd" / "opencall.service"


def _directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on ``unit``; it also checks that ExecStart's program exists."""
    ensure_debian_tools()
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # Until the package is installed /usr/bin/opencall does not exist: point ExecStart at this install's.
    command = shutil.which("opencall") or str(Path(sys.executable).parent / "opencall")
    unit = tmp_path / "opencall.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/opencall", command))
    result = verify(unit)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(("key", "value"), [
    ("Type", "notify"), ("User", "opencall"), ("Group", "opencall"), ("StateDirectory", "opencall"),
    ("LogsDirectory", "opencall"), ("ConfigurationDirectory", "opencall"), ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
    ("CapabilityBoundingSet", ""), ("SystemCallFilter", "@system-service"), ("UMask", "0077"),
    ("Restart", "on-failure"), ("ExecReload", "/bin/sh -c 'kill -HUP \"$MAINPID\"'"),
])
def test_unit_directive(key: str, value: str) -> None:
    assert _directives().get(key) == [value]


def test_unit_limits_and_address_families() -> None:
    directives = _directives()
    assert int(directives["LimitNOFILE"][0]) >= 65535 - 49152 + 1 + 1024  # every relay port, plus clients
    families = set(directives["RestrictAddressFamilies"][0].split())
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= families <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert directives["ExecStart"] == ["/usr/bin/opencall serve --config /etc/opencall/opencall.yaml"]


def test_exec_reload_needs_no_procps(make_server: Callable[..., Server], tmp_path: Path) -> None:
    """ExecReload as systemd runs it (MAINPID in its environment) on a system without /bin/kill (procps): the
    running server serves the renewed certificate, still running."""
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed(cert_path, key_path, "first")
    server = make_server({"server": {"tls": {"cert": str(cert_path), "key": str(key_path)}}})
    assert server.proc is not None
    port = server.config["server"]["port"]
    second = self_signed(cert_path, key_path, "second")
    command = shlex.split(_directives()["ExecReload"][0])
    assert command[0] == "/bin/sh", command
    empty = tmp_path / "no-procps"  # a PATH with no kill program on it: only the shell's builtin can do it
    empty.mkdir()
    done = subprocess.run(command, env={"MAINPID": str(server.proc.pid), "PATH": str(empty)},
                          capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stderr) == (0, "")
    deadline = time.monotonic() + 20
    while x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", port), timeout=30).encode()) \
            != second:
        assert time.monotonic() < deadline, "the renewed certificate was not served after ExecReload"
        time.sleep(0.1)
    assert server.proc.poll() is None
