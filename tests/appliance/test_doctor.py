"""``opencall doctor`` on a development install, against a real server and a real relay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from tests.appliance.tools import opencall
from tests.support import Server

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
    result = opencall("doctor", config=server.config_path)
    assert result.returncode == 0, result.stdout
    checks = _lines(result.stdout)
    assert set(checks.values()) == {"PASS"}, result.stdout
    assert {"config", "server", "certificate", "served certificate", "database", "relay",
            f"port {turn_port}/udp (turn)"} <= set(checks)
    assert "checks, all passed" in result.stdout
    assert "a packet echoed through it" in result.stdout
    assert f"PASS  port {turn_port}/udp (turn)  held by the running OpenCall" in result.stdout


def test_doctor_on_a_box_that_never_ran(tmp_path: Path) -> None:
    config = tmp_path / "opencall.yaml"
    config.write_text(yaml.safe_dump({"server": {"host": "127.0.0.1", "port": 1}, "data_dir": "data",
                                      "turn": {"enabled": True, "listen": "127.0.0.1", "port": 2}}))
    result = opencall("doctor", config=config)
    assert result.returncode == 1
    checks = _lines(result.stdout)
    assert checks["database"] == checks["certificate"] == checks["relay"] == "FAIL"
    assert "does not exist yet" in result.stdout and "fix: start the service once" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
