"""The box on the test LAN: the real ``opencall serve`` of this venv, with the config the .deb installs, in the
box's namespace; and requests made from inside a namespace (a phone's point of view)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.lan.netlab import Host
from tests.support import merge

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0


def installed_config() -> dict[str, Any]:
    """/etc/opencall/opencall.yaml as the .deb installs it (packaging/installed_config.py over the example)."""
    done = subprocess.run([sys.executable, str(ROOT / "packaging" / "installed_config.py"),
                           str(ROOT / "opencall.yaml.example")], capture_output=True, text=True, check=True)
    return yaml.safe_load(done.stdout)


class Box:
    """``opencall serve`` in ``host``'s namespace; ready when it tells systemd's notify socket READY=1."""

    def __init__(self, host: Host, workdir: Path, overrides: Mapping[str, Any] | None = None) -> None:
        self.host, self.workdir = host, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        paths = {"data_dir": str(workdir / "data"), "log_file": str(workdir / "logs" / "opencall.log")}
        self.config = merge(merge(installed_config(), paths), overrides or {})
        self.config_path = workdir / "opencall.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.stderr_path = workdir / "stderr.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.config["server"]["port"])

    @property
    def log_file(self) -> Path:
        return Path(self.config["log_file"])

    @property
    def ca_cert(self) -> Path:
        return Path(self.config["data_dir"]) / "tls" / "ca.crt"

    def url(self, host: str | None = None, path: str = "/") -> str:
        host = host or self.host.ipv4 or f"[{self.host.ipv6}]"
        return f"https://{host}:{self.port}{path}"

    def start(self) -> Box:
        notify_path = self.workdir / "notify.sock"
        notify_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(0.2)
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": str(notify_path)}
            env.pop("OPENCALL_CONFIG", None)
            opencall = str(Path(sys.prefix) / "bin" / "opencall")
            with self.stderr_path.open("ab") as err:
                self.proc = subprocess.Popen(
                    self.host.exec_argv(opencall, "serve", "--config", str(self.config_path)),
                    cwd="/", stdout=err, stderr=err, env=env)
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"box exited {self.proc.returncode}:\n{self.stderr_path.read_text()}")
                try:
                    if b"READY=1" in notify.recv(4096):
                        return self
                except TimeoutError:
                    continue
        raise RuntimeError(f"box not ready in {READY_TIMEOUT}s:\n{self.stderr_path.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


FETCH = """
import json, sys, httpx
response = httpx.get(sys.argv[1], verify=False, timeout=10)
print(json.dumps({"status": response.status_code, "body": response.text}))
"""


def fetch(host: Host, url: str) -> tuple[int, Any]:
    """GET ``url`` from inside ``host``'s namespace: (status, JSON body or text)."""
    done = subprocess.run(host.exec_argv(sys.executable, "-c", FETCH, url), capture_output=True, text=True,
                          timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"GET {url} from {host.name} failed: {done.stderr.strip()}")
    answer = json.loads(done.stdout)
    try:
        return answer["status"], json.loads(answer["body"])
    except ValueError:
        return answer["status"], answer["body"]
