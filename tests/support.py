"""Start the real `opencall serve` in a subprocess on 127.0.0.1 and talk to it over real HTTP."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

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


@dataclass
class Server:
    """A running `opencall serve` process with its own folder, config and log."""

    workdir: Path
    config: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
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

    def start(self) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OPENCALL_CONFIG", None)
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "opencall", "serve", "--config", str(self.config_path)],
                cwd="/", stdout=err, stderr=err, env=env,
            )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.stderr_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/api/auth/me", verify=False, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {READY_TIMEOUT}s:\n{self.stderr_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=False, timeout=10, **kwargs)


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
