"""No command hangs: a database that cannot be used stops every command within seconds with one line.

Each case runs ``user list/add/remove/reset-password``, ``doctor``, ``check-config`` and ``serve`` at once and
requires each to exit within :data:`LIMIT` seconds, without a traceback, naming the path or URL and a fix.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import cli_argv, cli_env, free_port, run_cli

LIMIT = 10.0  # seconds
USER_COMMANDS = {
    "user list": (["user", "list"], ""),
    "user add": (["user", "add", "carol", "--email", "carol@example.org"], "secret123\n"),
    "user remove": (["user", "remove", "bob"], ""),
    "user reset-password": (["user", "reset-password", "bob"], "secret456\n"),
}
NOBODY = 65534
PARALLEL = max(2, os.cpu_count() or 2)


def _config(folder: Path, **extra: object) -> Path:
    path = folder / "opencall.yaml"
    path.write_text(yaml.safe_dump({"server": {"host": "127.0.0.1", "port": free_port(), "tls": "off"},
                                    "turn": {"enabled": False}, "log_file": str(folder / "logs" / "o.log"),
                                    **extra}))
    return path


def _start(args: list[str], config: Path, stdin: str = "") -> subprocess.Popen[str]:
    proc = subprocess.Popen(cli_argv(*args, config=config), cwd="/", env=cli_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc


def _finish(name: str, proc: subprocess.Popen[str], started: float) -> tuple[int, str, str]:
    try:
        proc.wait(timeout=max(0.1, started + LIMIT - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{name} still running after {LIMIT} s")
    assert proc.stdout is not None and proc.stderr is not None
    return proc.returncode, proc.stdout.read(), proc.stderr.read()


def _all_fail(config: Path, fragment: str, users: bool = True, doctor: bool = True, serve: bool = True) -> None:
    """Run the commands at once; each exits in time with a non-zero status, one line naming ``fragment``."""
    commands = {name: (args, stdin) for name, (args, stdin) in USER_COMMANDS.items() if users}
    if doctor:
        commands["doctor"] = (["doctor"], "")
    if serve:
        commands["serve"] = (["serve"], "")
    commands["check-config"] = (["check-config"], "")  # reads no database: must pass, quickly
    names = list(commands)
    results = {}
    for first in range(0, len(names), PARALLEL):  # a few at once: the limit is for one command, not a busy CPU
        started = time.monotonic()
        batch = {name: _start(commands[name][0], config, commands[name][1]) for name in names[first:first + PARALLEL]}
        results.update({name: _finish(name, proc, started) for name, proc in batch.items()})
    for name, (status, out, err) in results.items():
        assert "Traceback" not in out + err, (name, out, err)
        if name == "check-config":
            assert status == 0, (out, err)
            continue
        assert status == 1, (name, status, out, err)
        assert out.startswith(f"config: {config} (--config)\n") or name == "serve", (name, out)
        if name == "doctor":
            lines = out.splitlines()
            failed = [index for index, line in enumerate(lines) if line.startswith("  FAIL  database")]
            assert failed and fragment in lines[failed[0]], out
            assert "fix: " in lines[failed[0] + 1], out
            continue
        errors = err.splitlines()
        if name == "serve":  # logging is set up: the config line at INFO, then the error at ERROR
            assert f"INFO opencall: config: {config} (--config)" in errors[0], err
            errors = [line for line in errors if " ERROR " in line]
        assert len(errors) == 1, (name, err)
        assert fragment in errors[0] and "fix: " in errors[0], (name, errors[0])
        if name != "serve":
            assert errors[0].startswith("opencall: "), errors[0]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is root's only): for data owned by ``nobody``."""
    folder = Path(tempfile.mkdtemp(prefix="opencall-fail-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _add_bob(config: Path) -> None:
    added = _start(["user", "add", "bob", "--email", "bob@example.org"], config, "secret123\n")
    status, out, err = _finish("user add", added, time.monotonic())
    assert status == 0, (out, err)


def test_missing_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "nowhere" / "data"
    config = _config(tmp_path, data_dir=str(data))
    _all_fail(config, str(data), serve=False)  # serve creates data_dir; it cannot when ...
    assert not data.exists()  # no command made it behind the operator's back
    (tmp_path / "a-file").write_text("")
    blocked = _config(tmp_path, data_dir=str(tmp_path / "a-file" / "data"))
    _all_fail(blocked, str(tmp_path / "a-file" / "data"), users=False, doctor=False)  # ... it is under a file


def test_user_list_without_config_in_an_empty_directory_does_not_hang(tmp_path: Path) -> None:
    """The hang of issue 11: embedded defaults, no ./data."""
    if Path("/etc/opencall/opencall.yaml").exists():
        pytest.skip("this host has /etc/opencall/opencall.yaml: the command would use it")
    result = run_cli("user", "list", cwd=tmp_path, timeout=LIMIT)
    assert result.returncode == 1
    assert result.stdout.startswith("config: embedded defaults (no --config, no $OPENCALL_CONFIG")
    assert result.stderr.startswith(f"opencall: data_dir {tmp_path / 'data'} does not exist; fix: ")
    assert not (tmp_path / "data").exists()


def _nobodys_config(shared_dir: Path, mode: int) -> tuple[Path, Path]:
    """A config whose data_dir (made with ``mode``) belongs to ``nobody``: run as root, the commands act as
    that owner. Returns (data_dir, config)."""
    if os.geteuid() != 0:
        pytest.fail("these tests make files owned by another user: run them as root (CI does)", pytrace=False)
    data = shared_dir / "data"
    data.mkdir(mode=mode)
    os.chown(data, NOBODY, NOBODY)
    return data, _config(shared_dir, data_dir=str(data))


@pytest.mark.root  # files owned by another user
def test_unwritable_data_dir(shared_dir: Path) -> None:
    """Run as root, the commands act as the owner of data_dir (``nobody`` here), who cannot write it."""
    data, config = _nobodys_config(shared_dir, 0o555)
    _all_fail(config, str(data), doctor=False, serve=False)


@pytest.mark.root  # files owned by another user
def test_read_only_database(shared_dir: Path) -> None:
    data, config = _nobodys_config(shared_dir, 0o755)
    _add_bob(config)  # made as nobody (the owner of data_dir)
    (data / "opencall.db").chmod(0o444)
    _all_fail(config, str(data / "opencall.db"), doctor=False, serve=False)


def test_locked_database(tmp_path: Path) -> None:
    """Another process holds an exclusive lock (a rollback-journal database: nobody may even read it)."""
    data = tmp_path / "data"
    data.mkdir()
    config = _config(tmp_path, data_dir=str(data))
    _add_bob(config)
    holder = sqlite3.connect(data / "opencall.db", isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        _all_fail(config, f"{data / 'opencall.db'} is locked by another process")
    finally:
        holder.close()


def test_postgres_on_a_closed_port(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    url = f"postgres://opencall:pw@127.0.0.1:{free_port()}/opencall"
    config = _config(tmp_path, data_dir=str(tmp_path / "data"), database_url=url)
    _all_fail(config, url.replace(":pw@", ":***@"))


def test_postgres_that_accepts_but_never_answers(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])  # held open, silent
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        (tmp_path / "data").mkdir()
        url = f"postgres://opencall@127.0.0.1:{listener.getsockname()[1]}/opencall"
        config = _config(tmp_path, data_dir=str(tmp_path / "data"), database_url=url)
        _all_fail(config, f"{url} did not answer within")
        assert accepted  # the commands did reach the silent server
    finally:
        listener.close()
        for sock in accepted:
            sock.close()
