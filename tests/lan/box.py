"""The box on a test LAN: the real ``opencall serve`` of this venv in a host's namespace, with the config the .deb
installs (or another base config) plus overrides; and commands and requests run inside a namespace (a phone's
point of view, or the box's own shell)."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.lan.netlab import Host
from tests.support import merge, stop_process

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0

# Before the server: a private /run (ip netns exec gives the command its own mount namespace, a slave of the
# host's) holding the socket Avahi would have, so the box sees an Avahi daemon; the host's /run is untouched.
FAKE_AVAHI = ("mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && {python} -c "
              "'import socket; socket.socket(socket.AF_UNIX).bind(\"/run/avahi-daemon/socket\")' && "
              "exec \"$0\" \"$@\"")


def installed_config() -> dict[str, Any]:
    """/etc/opencall/opencall.yaml as the .deb installs it (packaging/installed_config.py over the example)."""
    done = subprocess.run([sys.executable, str(ROOT / "packaging" / "installed_config.py"),
                           str(ROOT / "opencall.yaml.example")], capture_output=True, text=True, check=True)
    return yaml.safe_load(done.stdout)


def run_in(host: Host, *argv: str, timeout: float = 60, cwd: Path | str = "/") -> subprocess.CompletedProcess[str]:
    """``argv`` in ``host``'s namespace, its output captured, without this shell's OPENCALL_CONFIG."""
    env = {key: value for key, value in os.environ.items() if key != "OPENCALL_CONFIG"}
    return subprocess.run(host.exec_argv(*argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


class Box:
    """``opencall serve`` in ``host``'s namespace, in its own folder ``workdir``.

    Its config: ``config`` (default: the installed config) with data_dir and log_file in ``workdir``, then
    ``overrides``. ``fake_avahi`` runs it on a host where Avahi seems to run (see :data:`FAKE_AVAHI`).
    """

    def __init__(self, host: Host, workdir: Path, overrides: Mapping[str, Any] | None = None, *,
                 config: Mapping[str, Any] | None = None, fake_avahi: bool = False) -> None:
        self.host, self.workdir, self.fake_avahi = host, workdir, fake_avahi
        workdir.mkdir(parents=True, exist_ok=True)
        paths = {"data_dir": str(workdir / "data"), "log_file": str(workdir / "logs" / "opencall.log")}
        base = dict(config) if config is not None else installed_config()
        self.config = merge(merge(base, paths), overrides or {})
        self.config_path = workdir / "opencall.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.stderr_path = workdir / "stderr.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: socket.socket | None = None
        self.ready = ""  # the sd_notify message that said READY=1

    @property
    def port(self) -> int:
        return int(self.config["server"]["port"])

    @property
    def scheme(self) -> str:
        return "http" if self.config["server"].get("tls") in ("off", False) else "https"

    @property
    def log_file(self) -> Path:
        return Path(self.config["log_file"])

    @property
    def ca_cert(self) -> Path:
        return Path(self.config["data_dir"]) / "tls" / "ca.crt"

    def url(self, host: str | None = None, path: str = "/") -> str:
        host = host or self.host.ipv4 or f"[{self.host.ipv6}]"
        return f"{self.scheme}://{host}:{self.port}{path}"

    def start(self, wait_for: str | None = None) -> Box:
        """Start; ready when it tells its notify socket (systemd's, here the box's own) READY=1, or, with
        ``wait_for``, when its log has a line matching that pattern (and no NOTIFY_SOCKET is set)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OPENCALL_CONFIG", None)
        if wait_for is None:
            notify_path = self.workdir / "notify.sock"
            notify_path.unlink(missing_ok=True)
            self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.notify.bind(str(notify_path))
            self.notify.settimeout(0.2)
            env["NOTIFY_SOCKET"] = str(notify_path)
        serve = [str(Path(sys.prefix) / "bin" / "opencall"), "serve", "--config", str(self.config_path)]
        if self.fake_avahi:
            serve = ["sh", "-c", FAKE_AVAHI.format(python=shlex.quote(sys.executable)), *serve]
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(self.host.exec_argv(*serve), cwd="/", stdout=err, stderr=err, env=env)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"box exited {self.proc.returncode}:\n{self.stderr_path.read_text()}")
            if wait_for is not None:
                if re.search(wait_for, self.log()):
                    return self
                time.sleep(0.1)
                continue
            try:
                message = self.notice(0.2)
            except TimeoutError:
                continue
            if "READY=1" in message:
                self.ready = message
                return self
        awaited = f"a log line matching {wait_for!r}" if wait_for is not None else "READY=1"
        raise RuntimeError(f"box not ready ({awaited}) in {READY_TIMEOUT}s:\n{self.stderr_path.read_text()}")

    def notice(self, timeout: float) -> str:
        """The next message the box sends its notify socket (TimeoutError when none comes in ``timeout`` s)."""
        assert self.notify is not None, "started with wait_for: no notify socket"
        self.notify.settimeout(timeout)
        return self.notify.recv(4096).decode()

    def stop(self) -> int | None:
        """Stop it (:func:`tests.support.stop_process`): its exit status, None when it was not running."""
        status = stop_process(self.proc)
        self.proc = None
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        return status

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_lines(self, level: str) -> list[str]:
        return [line for line in self.log().splitlines() if f" {level} " in line]


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
