"""``opencall doctor`` on a development install, against a real server and a real relay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from opencall.commands.checks import check_advertise
from opencall.config import parse_config
from tests.support import Server, run_cli

SECRET = "doctor-test-secret"


def _lines(output: str) -> dict[str, str]:
    """Check name -> PASS/FAIL from the report."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] in ("PASS", "FAIL"):
            found[line[8:31].strip()] = parts[0]
    return found


def test_doctor_passes_everything_against_a_running_server(make_server: Callable[..., Server]) -> None:
    server = make_server({"server": {"tls": "auto"}, "turn": {"secret": SECRET}})
    turn_port = server.config["turn"]["port"]
    result = run_cli("doctor", config=server.config_path)
    assert result.returncode == 0, result.stdout
    checks = _lines(result.stdout)
    assert set(checks.values()) == {"PASS"}, result.stdout
    assert {"config", "server", "certificate", "served certificate", "database", "relay", "relay address",
            f"port {turn_port}/udp (turn)"} <= set(checks)
    assert "PASS  relay address          advertised to phones as 127.0.0.1" in result.stdout
    assert "checks, all passed" in result.stdout
    assert "a packet echoed through it" in result.stdout
    assert f"PASS  port {turn_port}/udp (turn)  held by the running OpenCall" in result.stdout


def test_doctor_on_a_box_that_never_ran(tmp_path: Path) -> None:
    config = tmp_path / "opencall.yaml"
    config.write_text(yaml.safe_dump({"server": {"host": "127.0.0.1", "port": 1}, "data_dir": "data",
                                      "turn": {"enabled": True, "listen": "127.0.0.1", "port": 2}}))
    result = run_cli("doctor", config=config)
    assert result.returncode == 1
    checks = _lines(result.stdout)
    assert checks["database"] == checks["certificate"] == checks["relay"] == "FAIL"
    assert "does not exist yet" in result.stdout and "fix: start the service once" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_fails_a_relay_advertised_on_loopback_only(tmp_path: Path) -> None:
    """Checked without binding anything: the config says "serve all interfaces", advertise says loopback."""
    wildcard = parse_config({"server": {"host": "0.0.0.0"}, "turn": {"advertise": "127.0.0.1"}}, tmp_path)
    result = check_advertise(wildcard, None)
    assert not result.ok and result.name == "relay address"
    assert "turn.advertise: 127.0.0.1 is 127.0.0.1" in result.detail
    assert "server.host is 0.0.0.0 and turn.listen is 0.0.0.0" in result.detail
    assert result.fix.startswith("set turn.advertise to this box's LAN address")
    assert "bring up the LAN interface" in result.fix
    auto = parse_config({"turn": {"listen": "0.0.0.0"}}, tmp_path)
    assert not check_advertise(auto, None, advertised=("127.0.0.1",)).ok
    assert check_advertise(auto, None, advertised=("192.168.50.2", "fd42:50::2")).ok
    # The LAN came up after the server started: it still advertises loopback only until restarted.
    stale = check_advertise(auto, "loopback only", advertised=("192.168.50.2",))
    assert not stale.ok and "restart" in stale.fix
    local = parse_config({"server": {"host": "127.0.0.1"}, "turn": {"listen": "127.0.0.1", "advertise": "127.0.0.1"}},
                         tmp_path)
    assert check_advertise(local, "ok").ok
    assert check_advertise(parse_config({"turn": {"enabled": False}}, tmp_path), None).ok
