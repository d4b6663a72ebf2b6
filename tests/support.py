"""The one test harness: start the real `opencall serve` on 127.0.0.1 (:func:`configured_server`, :func:`serve`),
run the `opencall` command (:func:`run_cli`), read its database (:func:`database`, :func:`query_db`), and make a
certificate (:func:`self_signed`)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

READY_TIMEOUT = 30.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 for TCP and UDP right now."""
    while True:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as check:
            try:
                check.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 15) -> int | None:
    """Stop a server the tests started: SIGTERM, ``timeout`` seconds to exit, then SIGKILL.

    Returns its exit status (negative, the signal, when it had to be killed), or None when there was nothing to
    stop: no process, or one that had exited already."""
    if proc is None or proc.poll() is not None:
        return None
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def test_config(workdir: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A config for one test server: loopback only, plain HTTP, generous rate limits."""
    base: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": free_port(), "tls": "off"},
        "data_dir": "data",
        "log_file": "logs/opencall.log",
        "turn": {"listen": "127.0.0.1", "advertise": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM),
                 "tls_port": None, "allowed_peers": ["127.0.0.0/8"]},
        "rate_limits": {"login_per_ip": 10000, "login_failures_per_user": 10000, "register_per_ip": 10000,
                        "contact_per_ip": 10000, "client_log_per_ip": 10000, "calls_per_caller": 10000,
                        "calls_per_ip": 10000, "rings_per_callee": 10000},
    }
    return merge(base, overrides or {})


# Overrides for a server that must never refuse a call (fuzzers, benchmarks).
NO_CALL_LIMITS = {"rate_limits": {"calls_per_caller": 0, "calls_per_ip": 0, "rings_per_callee": 0}}

test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, despite its name


# -- the opencall command ----------------------------------------------------------------------------------

def cli_argv(*args: str, config: Path | None = None) -> list[str]:
    """``python -m opencall ARGS [--config CONFIG]`` with this venv's Python (the installed copy)."""
    return [sys.executable, "-m", "opencall", *args, *(["--config", str(config)] if config is not None else [])]


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the developer's own $OPENCALL_CONFIG, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key != "OPENCALL_CONFIG"}
    env.update(extra or {})
    return env


def run_cli(*args: str, config: Path | None = None, cwd: Path | str = "/", env: Mapping[str, str] | None = None,
            stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``opencall ARGS`` to its end, output captured; ``env`` adds to :func:`cli_env`."""
    return subprocess.run(cli_argv(*args, config=config), input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=cli_env(env), check=False)


# -- a server ------------------------------------------------------------------------------------------------

def wait_ready(proc: subprocess.Popen[Any], base_url: str, output: Path, timeout: float = READY_TIMEOUT) -> None:
    """Wait until the server ``proc`` answers ``GET /api/auth/me`` at ``base_url``; fail with its ``output``
    when it exits first or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{output.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base_url}/api/auth/me", verify=False, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready in {timeout}s:\n{output.read_text(errors='replace')}")


@dataclass
class Server:
    """An `opencall serve` process with its own folder, config and log; ``with server:`` runs it.

    ``env`` adds to its environment; ``config_by_env`` names the config in $OPENCALL_CONFIG instead of
    ``--config``; ``preexec`` runs in the child before the server (resource limits)."""

    workdir: Path
    config: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    config_by_env: bool = False
    preexec: Callable[[], None] | None = None
    stderr_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.stderr_path = self.workdir / "stderr.txt"

    @property
    def config_path(self) -> Path:
        return self.workdir / "opencall.yaml"

    @property
    def scheme(self) -> str:
        return "http" if self.config["server"].get("tls") in ("off", False) else "https"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.config['server']['port']}"

    @property
    def log_file(self) -> Path:
        return self.workdir / self.config["log_file"]

    @property
    def data_dir(self) -> Path:
        return self.workdir / self.config["data_dir"]

    def launch(self) -> Server:
        """Start the process without waiting for it to answer (the readiness tests wait their own way)."""
        env = cli_env({"PYTHONUNBUFFERED": "1", **self.env})
        argv = cli_argv("serve", config=None if self.config_by_env else self.config_path)
        if self.config_by_env:
            env["OPENCALL_CONFIG"] = str(self.config_path)
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(argv, cwd="/", stdout=err, stderr=err, env=env, preexec_fn=self.preexec)
        return self

    def start(self) -> Server:
        """Start it and wait until it answers; a server that does not is stopped and the test fails."""
        self.launch()
        assert self.proc is not None
        try:
            wait_ready(self.proc, self.base_url, self.stderr_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=False, timeout=10, **kwargs)


def configured_server(workdir: Path, overrides: Mapping[str, Any] | None = None, **options: Any) -> Server:
    """The one factory of test servers: :func:`test_config` with ``overrides`` written into ``workdir``, not
    started yet (``with configured_server(...) as running:``); ``options`` are :class:`Server`'s."""
    return Server(workdir, test_config(workdir, overrides), **options)


def serve(factory: pytest.TempPathFactory, name: str, overrides: Mapping[str, Any] | None = None) -> Iterator[Server]:
    """The body of a fixture that shares one server: ``yield from serve(tmp_path_factory, "name", overrides)``."""
    with configured_server(factory.mktemp(name), overrides) as running:
        yield running


def metric(text: str, sample: str) -> float:
    """The value of ``sample`` (a name with its labels, as /metrics writes it) in a /metrics page."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in:\n{text}")


# -- its database --------------------------------------------------------------------------------------------

@contextmanager
def database(server: Server) -> Iterator[sqlite3.Connection]:
    """A connection to the server's SQLite file, committed on exit; WAL mode lets it run beside the live server."""
    connection = sqlite3.connect(server.data_dir / "opencall.db", timeout=10)
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


def query_db(server: Server, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows straight from the server's SQLite database, as the server wrote them."""
    with database(server) as db:
        return db.execute(sql, params).fetchall()


# -- certificates --------------------------------------------------------------------------------------------

def self_signed(cert_path: Path, key_path: Path, common_name: str = "127.0.0.1", days: int = 30) -> x509.Certificate:
    """Write a self-signed certificate for 127.0.0.1 and its key (an operator's own certificate, for tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


# -- accounts ------------------------------------------------------------------------------------------------

def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def register(server: Server, username: str | None = None, password: str = "secret123") -> tuple[httpx.Client, str]:
    """A client signed in to a new account (cookie jar holds the session), and its username."""
    username = username or unique_name()
    client = server.client()
    response = client.post("/api/auth/register",
                           json={"username": username, "email": f"{username}@example.com", "password": password})
    assert response.status_code == 200, response.text
    return client, username


def api_key(client: httpx.Client) -> str:
    response = client.get("/api/key")
    assert response.status_code == 200, response.text
    key: str = response.json()["apiKey"]
    return key
