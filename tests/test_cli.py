"""The `opencall` command: check-config and serve, config errors (exit 2, one line), OPENCALL_CONFIG."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from opencall.config import SYSTEM_CONFIG, ConfigChoice, choose_config
from tests.support import Server, cli_env, free_port, run_cli

EXIT_CONFIG = 2
OPENCALL = Path(sys.executable).parent / "opencall"  # the console script installed beside this Python


def _loopback_config(folder: Path, **extra: object) -> dict[str, object]:
    return {"server": {"host": "127.0.0.1", "port": free_port(), "tls": "off"},
            "turn": {"listen": "127.0.0.1", "advertise": "127.0.0.1", "port": free_port(), "tls_port": None},
            **extra}


BAD_CONFIGS = {
    "unknown-key": ("colour: blue\n", "colour"),
    "unknown-nested-key": ("server:\n  hostname: box\n", "server.hostname"),
    "port-out-of-range": ("server:\n  port: 70000\n", "server.port"),
    "tls-garbage": ("server:\n  tls: maybe\n", "server.tls"),
    "bad-cidr": ("turn:\n  allowed_peers: [10.0.0.0/33]\n", "turn.allowed_peers"),
    "bad-log-level": ("log_level: chatty\n", "log_level"),
    "turn-port-equals-server-port": ("server:\n  port: 9000\nturn:\n  port: 9000\n", "turn.port"),
    "non-mapping": ("- server\n- turn\n", "config"),
    "invalid-yaml": ("server:\n  port: [8443\n  tls: off\n", "not valid YAML"),
    "missing-tls-cert": ("server:\n  tls: {cert: nope/cert.pem, key: nope/key.pem}\n",
                         "server.tls.cert: cannot read"),
    "missing-file": (None, "cannot read"),
    "directory": ("<dir>", "cannot read"),
}


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_config_errors_exit_2_with_one_line_naming_the_key(tmp_path: Path, command: str, case: str) -> None:
    text, names = BAD_CONFIGS[case]
    path = tmp_path / "opencall.yaml"
    if text == "<dir>":
        path.mkdir()
    elif text is not None:
        path.write_text(text)
    result = run_cli(command, "--config", str(path), cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("opencall: config error: ")
    assert names in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # nothing was started or created


def test_config_errors_via_opencall_config_env(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rate_limits:\n  login_per_ip: lots\n")
    for command in ("check-config", "serve"):
        result = run_cli(command, cwd=tmp_path, env={"OPENCALL_CONFIG": str(path)})
        assert result.returncode == EXIT_CONFIG
        assert result.stderr.splitlines() == [
            "opencall: config error: rate_limits.login_per_ip: must be an integer from 0 to 1000000, got 'lots'"]


@pytest.mark.parametrize("tls", ["off", "false"])
def test_tls_off_and_false_are_accepted(tmp_path: Path, tls: str) -> None:
    path = tmp_path / "opencall.yaml"
    path.write_text(f"server:\n  port: 8080\n  tls: {tls}\n")
    result = run_cli("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [f"config: {path} (--config)", "config OK"]
    assert "web:      http://0.0.0.0:8080" in result.stdout


def test_embedded_defaults_without_a_config_file(tmp_path: Path) -> None:
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if SYSTEM_CONFIG.exists():
        pytest.skip(f"this host has {SYSTEM_CONFIG}: it is the default")
    lines = result.stdout.splitlines()
    assert lines[:2] == ["config: embedded defaults (no --config, no $OPENCALL_CONFIG, no /etc/opencall/opencall.yaml)",
                         "config OK"]
    for expected in ("  web:      https://0.0.0.0:8443",
                     f"  data_dir: {tmp_path / 'data'}",
                     f"  database: sqlite://{tmp_path / 'data' / 'opencall.db'}",
                     f"  log_file: {tmp_path / 'logs' / 'opencall.log'}",
                     "  turn:     on, port 3478"):
        assert expected in lines
    assert result.stderr == ""


def test_check_config_resolves_relative_paths_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "opencall.yaml").write_text("data_dir: state\nlog_file: logs/x.log\n")
    result = run_cli("check-config", "--config", "conf/opencall.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"  data_dir: {folder / 'state'}" in result.stdout
    assert f"  log_file: {folder / 'logs' / 'x.log'}" in result.stdout


def test_opencall_config_env_is_honoured_by_check_config(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("server:\n  port: 9443\n")
    result = run_cli("check-config", cwd=Path("/"), env={"OPENCALL_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"config: {path} ($OPENCALL_CONFIG)"
    assert "web:      https://0.0.0.0:9443" in result.stdout
    assert f"  data_dir: {tmp_path / 'data'}" in result.stdout


def test_serve_reads_opencall_config_and_runs_from_any_directory(tmp_path: Path) -> None:
    with Server(tmp_path, _loopback_config(tmp_path), config_by_env=True) as server:
        assert httpx.get(f"{server.base_url}/api/auth/me", timeout=5).json() == {"authenticated": False}
        assert f"INFO opencall: config: {server.config_path} ($OPENCALL_CONFIG)" in server.stderr_path.read_text()
        # Relative data_dir and log_file (the defaults) landed beside the config file, not in /.
        assert (tmp_path / "data" / "opencall.db").is_file()
        assert (tmp_path / "logs" / "opencall.log").is_file()


def test_console_script(tmp_path: Path) -> None:
    assert OPENCALL.exists(), f"console script missing: {OPENCALL}"
    version = subprocess.run([str(OPENCALL), "--version"], capture_output=True, text=True, timeout=20,
                             check=False)
    assert version.returncode == 0
    assert version.stdout.startswith("opencall ")
    path = tmp_path / "opencall.yaml"
    path.write_text("nonsense: 1\n")
    result = subprocess.run([str(OPENCALL), "check-config", "--config", str(path)], capture_output=True,
                            text=True, timeout=20, check=False)
    assert result.returncode == EXIT_CONFIG
    assert result.stderr == "opencall: config error: nonsense: unknown key\n"


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip()
    assert "Traceback" not in result.stderr


def test_config_lookup_order() -> None:
    """--config, else $OPENCALL_CONFIG, else /etc/opencall/opencall.yaml when it exists, else the defaults."""
    env = {"OPENCALL_CONFIG": "/env.yaml"}
    assert choose_config("/cli.yaml", env, True) == ConfigChoice(Path("/cli.yaml"), "--config")
    assert choose_config(None, env, True) == ConfigChoice(Path("/env.yaml"), "$OPENCALL_CONFIG")
    assert choose_config(None, {"OPENCALL_CONFIG": ""}, True) == ConfigChoice(SYSTEM_CONFIG, "the installed config")
    assert choose_config(None, {}, True) == ConfigChoice(SYSTEM_CONFIG, "the installed config")
    assert choose_config(None, {}, False) == ConfigChoice(None, "")


@pytest.mark.parametrize("command", [["check-config"], ["doctor"], ["user", "list"]])
def test_every_command_names_its_config_on_the_first_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "opencall.yaml"
    path.write_text(yaml.safe_dump(_loopback_config(tmp_path, turn={"enabled": False})))
    by_flag = run_cli(*command, "--config", str(path), cwd=Path("/"))
    assert by_flag.stdout.splitlines()[0] == f"config: {path} (--config)", by_flag
    by_env = run_cli(*command, cwd=Path("/"), env={"OPENCALL_CONFIG": str(path)})
    assert by_env.stdout.splitlines()[0] == f"config: {path} ($OPENCALL_CONFIG)", by_env
    assert "Traceback" not in by_flag.stderr + by_env.stderr


@pytest.mark.root  # a private mount namespace (unshare), or /etc/opencall made and removed
@pytest.mark.skipif(os.geteuid() != 0, reason="writes /etc/opencall/opencall.yaml")
def test_the_installed_config_is_the_default(tmp_path: Path) -> None:
    """With no --config and no $OPENCALL_CONFIG, /etc/opencall/opencall.yaml is read. The host's own /etc is
    never changed when it has that folder: the command runs in a private mount namespace (unshare) where a
    folder of the test's is bound over /etc/opencall; without the folder, the test makes it and removes it."""
    folder = tmp_path / "etc-opencall"
    folder.mkdir()
    (folder / SYSTEM_CONFIG.name).write_text(f"server:\n  port: 9444\ndata_dir: {tmp_path / 'state'}\n")
    if SYSTEM_CONFIG.parent.exists():
        script = f'mount --bind "{folder}" "{SYSTEM_CONFIG.parent}" && exec "$0" -m opencall check-config'
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                 sys.executable], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                                timeout=20, check=False)
    else:
        SYSTEM_CONFIG.parent.mkdir()
        try:
            shutil.copy(folder / SYSTEM_CONFIG.name, SYSTEM_CONFIG)
            result = run_cli("check-config", cwd=tmp_path)
        finally:
            shutil.rmtree(SYSTEM_CONFIG.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"config: {SYSTEM_CONFIG} (the installed config)"
    assert f"  data_dir: {tmp_path / 'state'}" in result.stdout
