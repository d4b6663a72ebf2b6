"""The ``opencall`` command on a development install: init, version, user, errors as one line."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path

import yaml

from opencall import __version__
from opencall.commands.init_config import data_paths, template_text, with_paths
from opencall.config import load_config, parse_config
from tests.appliance.tools import REPO
from tests.support import Server, run_cli


def _one_line_error(result: object, status: int) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert err.startswith("opencall: "), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_version() -> None:
    result = run_cli("version")
    assert (result.returncode, result.stdout.strip()) == (0, f"opencall {__version__}")
    assert run_cli("--version").stdout.strip() == f"opencall {__version__}"


def test_init_writes_the_example_with_a_fresh_secret_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "opencall.yaml", tmp_path / "b.yaml"
    assert run_cli("init", str(first)).returncode == 0
    assert run_cli("init", str(second)).returncode == 0
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    secrets = []
    for path in (first, second):
        config = load_config(path)
        assert config.turn.secret is not None and re.fullmatch(r"[0-9a-f]{64}", config.turn.secret)
        secrets.append(config.turn.secret)
        assert config.data_dir == path.parent / "data"  # next to the file, written as absolute paths
        assert f"data_dir: {path.parent / 'data'}  " in path.read_text()
        assert f"log_file: {path.parent / 'logs' / 'opencall.log'}  " in path.read_text()
    assert secrets[0] != secrets[1]
    # Everything but the secret line is the example, comments included.
    example = (REPO / "opencall.yaml.example").read_text().splitlines()
    written = first.read_text().splitlines()
    changed = ("secret:", "data_dir:", "log_file:")
    assert [line for line in written if not line.startswith(changed) and "secret:" not in line] == \
        [line for line in example if not line.startswith(changed) and "secret:" not in line]

    before = first.read_text()
    err = _one_line_error(run_cli("init", str(first)), 1)
    assert "already exists" in err
    assert first.read_text() == before


def test_errors_are_one_line(tmp_path: Path) -> None:
    assert "invalid choice" in _one_line_error(run_cli("frobnicate"), 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics:\n  token: short\n")
    assert "metrics.token" in _one_line_error(run_cli("check-config", config=bad), 2)
    bad.write_text("metrics:\n  allow: [not-a-network]\n")
    assert "metrics.allow" in _one_line_error(run_cli("doctor", config=bad), 2)
    assert "cannot read" in _one_line_error(run_cli("user", "list", config=tmp_path / "missing.yaml"), 2)
    (tmp_path / "a-file").write_text("")
    assert "cannot write" in _one_line_error(run_cli("init", str(tmp_path / "a-file" / "opencall.yaml")), 1)


def test_user_commands(make_server: Callable[..., Server]) -> None:
    server = make_server()
    config = server.config_path

    added = run_cli("user", "add", "Alice", "--email", "alice@example.org", config=config, stdin="first-pass\n")
    assert added.returncode == 0, added.stderr
    assert re.search(r"API key: oc_[0-9a-f]{32}", added.stdout)
    assert "already taken" in _one_line_error(
        run_cli("user", "add", "alice", "--email", "x@example.org", config=config, stdin="another1\n"), 1)
    assert "password" in _one_line_error(
        run_cli("user", "add", "bob", "--email", "bob@example.org", config=config, stdin="123\n"), 1)

    listed = run_cli("user", "list", config=config)
    assert listed.returncode == 0 and "Alice" in listed.stdout and "alice@example.org" in listed.stdout
    assert "1 user(s)" in listed.stdout

    with server.client() as browser:  # the account made by the CLI signs in on the running server
        assert browser.post("/api/auth/login", json={"username": "alice", "password": "first-pass"}).status_code == 200
        assert browser.get("/api/auth/me").json()["authenticated"] is True
        reset = run_cli("user", "reset-password", "ALICE", config=config, stdin="second-pass\n")
        assert reset.returncode == 0, reset.stderr
        assert "its API key keeps working (--rotate-key replaces it)" in reset.stdout
        assert browser.get("/api/auth/me").json() == {"authenticated": False}  # its session was ended
        assert browser.post("/api/auth/login", json={"username": "alice", "password": "first-pass"}).status_code == 401
        assert browser.post("/api/auth/login",
                            json={"username": "alice", "password": "second-pass"}).status_code == 200

    old_key = re.search(r"API key: (oc_[0-9a-f]{32})", added.stdout).group(1)  # type: ignore[union-attr]
    rotated = run_cli("user", "reset-password", "alice", "--rotate-key", config=config, stdin="third-pass\n")
    assert rotated.returncode == 0, rotated.stderr
    new_key = re.search(r"new API key: (oc_[0-9a-f]{32})", rotated.stdout).group(1)  # type: ignore[union-attr]
    with server.client() as rest:  # the old key stops working at once, the printed one works
        assert rest.get("/api/key", headers={"x-api-key": old_key}).status_code == 401
        assert rest.get("/api/key", headers={"x-api-key": new_key}).json() == {"apiKey": new_key}

    assert run_cli("user", "remove", "alice", config=config).returncode == 0
    assert "no user named" in _one_line_error(run_cli("user", "remove", "alice", config=config), 1)
    assert "0 user(s)" in run_cli("user", "list", config=config).stdout


def test_check_config_shows_metrics_access(tmp_path: Path) -> None:
    path = tmp_path / "opencall.yaml"
    path.write_text(yaml.safe_dump({"metrics": {"allow": ["10.0.0.0/8"], "token": "t" * 20}}))
    result = run_cli("check-config", config=path)
    assert result.returncode == 0
    assert "metrics:  on, from 10.0.0.0/8 or with the bearer token" in result.stdout


def test_init_under_etc_uses_the_system_folders(tmp_path: Path) -> None:
    """A config written under /etc keeps its data in /var/lib/opencall and its log in /var/log/opencall (as the
    .deb does), not in /etc/data; elsewhere data and logs go next to the file, as absolute paths."""
    assert data_paths(Path("/etc/opencall.yaml")) == {"data_dir": Path("/var/lib/opencall"),
                                                      "log_file": Path("/var/log/opencall/opencall.log")}
    assert data_paths(Path("/srv/box/opencall.yaml")) == {"data_dir": Path("/srv/box/data"),
                                                         "log_file": Path("/srv/box/logs/opencall.log")}
    text = with_paths(template_text(), data_paths(Path("/etc/opencall/opencall.yaml")))
    config = parse_config(yaml.safe_load(text), Path("/etc/opencall"))
    assert (config.data_dir, config.log_file) == (Path("/var/lib/opencall"), Path("/var/log/opencall/opencall.log"))
    written = run_cli("init", "../" + str(tmp_path / "x.yaml"))  # run from /: the same folder
    assert written.returncode == 0, written.stderr
    assert f"data_dir: {tmp_path / 'data'}, log_file: {tmp_path / 'logs' / 'opencall.log'}" in written.stdout
