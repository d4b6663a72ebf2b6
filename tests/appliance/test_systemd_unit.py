"""systemd/opencall.service: ``systemd-analyze verify`` passes and the hardening of the issue is there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.appliance.tools import REPO, ensure_debian_tools

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
    ("Restart", "on-failure"), ("ExecReload", "/bin/kill -HUP $MAINPID"),
])
def test_unit_directive(key: str, value: str) -> None:
    assert _directives().get(key) == [value]


def test_unit_limits_and_address_families() -> None:
    directives = _directives()
    assert int(directives["LimitNOFILE"][0]) >= 65535 - 49152 + 1 + 1024  # every relay port, plus clients
    families = set(directives["RestrictAddressFamilies"][0].split())
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= families <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert directives["ExecStart"] == ["/usr/bin/opencall serve --config /etc/opencall/opencall.yaml"]
