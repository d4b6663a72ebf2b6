"""The .deb on this machine: build, lintian, install, run as ``opencall``, doctor, upgrade, remove, purge.

The tests run in file order as one installation's life; the module fixture purges the package at the end
whatever happens. No systemd runs here, so the test starts ``/usr/bin/opencall serve`` itself as the
``opencall`` user (setpriv), with the installed config edited to listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import random
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.appliance.test_systemd_unit import verify
from tests.appliance.tools import REPO, ensure_debian_tools
from tests.support import free_port, merge, wait_ready

CONFIG = Path("/etc/opencall/opencall.yaml")
DATA, LOGS, PREFIX = Path("/var/lib/opencall"), Path("/var/log/opencall"), Path("/opt/opencall")


def dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300, env=env)


def installed() -> bool:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "opencall"], capture_output=True, text=True)
    return status.stdout.strip() == "install ok installed"


def purge() -> None:
    if subprocess.run(["dpkg-query", "-W", "opencall"], capture_output=True).returncode == 0:
        assert dpkg("--purge", "opencall").returncode == 0


@dataclass
class Box:
    """The installed package and the server the test runs from it."""

    deb: Path
    lintian: subprocess.Popen[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def configure(self) -> None:
        """Edit the installed config (a conffile) for 127.0.0.1 and free ports."""
        self.port = free_port()
        low = random.randrange(40000, 48000, 100)
        overrides = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "turn": {"listen": "127.0.0.1", "advertise": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM),
                     "tls_port": free_port(), "relay_ports": f"{low}-{low + 99}", "allowed_peers": ["127.0.0.0/8"]},
            "mdns": {"enabled": False},  # on in the package; here it would multicast on this host's interfaces
        }
        config = merge(yaml.safe_load(CONFIG.read_text()), overrides)
        with CONFIG.open("w") as file:  # in place: keeps the owner and mode postinst gave it
            file.write(yaml.safe_dump(config))

    def start(self) -> None:
        """``/usr/bin/opencall serve`` as the opencall user, the way the unit runs it (minus systemd)."""
        log = (self.workdir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=opencall", "--regid=opencall", "--init-groups", "--reset-env",
             "/usr/bin/opencall", "serve", "--config", str(CONFIG)],
            cwd="/", stdout=log, stderr=log)
        wait_ready(self.proc, self.base_url, self.workdir / "serve.log", timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(timeout=30) == 0
        self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=False, timeout=10)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    ensure_debian_tools()
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([str(REPO / "packaging" / "build-deb"), "--out", str(out)], capture_output=True,
                           text=True, timeout=1200)
    assert build.returncode == 0, build.stderr
    deb = Path(build.stdout.strip().splitlines()[-1])
    # lintian takes a while: it runs beside the installation tests and is read by the last test.
    lintian = subprocess.Popen(["lintian", "--fail-on", "error,warning", str(deb)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    purge()  # start from a machine without the package
    installation = Box(deb=deb, lintian=lintian, workdir=out)
    result = dpkg("-i", str(deb))
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        yield installation
    finally:
        installation.stop()
        if lintian.poll() is None:
            lintian.kill()
        purge()


def test_build_name_and_dependencies(box: Box) -> None:
    version = subprocess.run(["dpkg-deb", "-f", str(box.deb), "Version"], capture_output=True, text=True).stdout
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert box.deb.name == f"opencall_{version.strip()}_{arch}.deb"
    depends = subprocess.run(["dpkg-deb", "-f", str(box.deb), "Depends"], capture_output=True, text=True).stdout
    assert "python3 (>= 3.11)" in depends and "python3-venv" not in depends


def test_install_sets_up_user_directories_secret_and_config(box: Box) -> None:
    user = pwd.getpwnam("opencall")
    assert user.pw_uid < 1000 and user.pw_shell in ("/usr/sbin/nologin", "/bin/false")
    for folder in (DATA, LOGS):
        info = folder.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.pw_uid, 0o750)
    secret = DATA / "turn-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.stat().st_uid == user.pw_uid
    assert len(secret.read_text().strip()) == 64
    assert stat.S_IMODE(CONFIG.stat().st_mode) == 0o640 and CONFIG.stat().st_gid == user.pw_gid
    conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "opencall"], capture_output=True, text=True)
    assert str(CONFIG) in conffiles.stdout
    config = yaml.safe_load(CONFIG.read_text())
    assert (config["data_dir"], config["log_file"]) == (str(DATA), str(LOGS / "opencall.log"))
    assert config["mdns"] == {"enabled": True, "name": "auto"}  # the box announces itself on the LAN
    # The environment runs on Debian's interpreter; the command is on PATH.
    assert os.readlink(PREFIX / "bin" / "python3") == "/usr/bin/python3"
    assert os.path.realpath("/usr/bin/opencall") == str(PREFIX / "bin" / "opencall")
    version = subprocess.run(["/usr/bin/opencall", "version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("opencall ")
    assert verify(Path("/lib/systemd/system/opencall.service")).returncode == 0


def test_serves_as_the_opencall_user(box: Box) -> None:
    box.configure()
    box.start()
    assert box.proc is not None
    uid_line = next(line for line in Path(f"/proc/{box.proc.pid}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
    assert uid_line.split()[1] == str(pwd.getpwnam("opencall").pw_uid)
    with box.client() as client:
        assert client.get("/api/auth/me").json() == {"authenticated": False}
        health = client.get("/healthz").json()
        assert health["database"] == "ok" and health["relay"] in ("ok", "not running")
        register = client.post("/api/auth/register", json={"username": "keeper", "email": "keeper@example.org",
                                                            "password": "kept-across-upgrades"})
        assert register.status_code == 200, register.text
    assert (LOGS / "opencall.log").exists()
    assert stat.S_IMODE((DATA / "tls" / "ca.key").stat().st_mode) == 0o600


def test_healthz_is_all_ok(box: Box) -> None:
    with box.client() as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()["relay"]) == (200, "ok")


def _doctor() -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/usr/bin/opencall", "doctor", "--config", str(CONFIG)], capture_output=True, text=True,
                          timeout=120)


def test_doctor_checks_pass_apart_from_the_relay(box: Box) -> None:
    result = _doctor()
    box.state["doctor"] = result
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert all(line.split()[1] == "relay" for line in failed), result.stdout
    for name in ("config", "certificate", "served certificate", "database"):
        assert any(line.split()[:2] == ["PASS", name] or line.split()[:3] == ["PASS", *name.split()]
                   for line in result.stdout.splitlines()), (name, result.stdout)
    # Run as root, doctor worked as the owner of data_dir: nothing there belongs to root now.
    assert [str(p) for p in DATA.rglob("*") if p.stat().st_uid == 0] == []


def test_doctor_passes(box: Box) -> None:
    result = box.state.get("doctor") or _doctor()
    assert result.returncode == 0, result.stdout


def test_upgrade_keeps_accounts_secrets_and_config(box: Box) -> None:
    secret = (DATA / "turn-secret").read_text()
    ca = (DATA / "tls" / "ca.crt").read_bytes()
    box.stop()
    result = dpkg("-i", str(box.deb))
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load(CONFIG.read_text())["server"]["port"] == box.port  # the edited conffile stays
    assert (DATA / "turn-secret").read_text() == secret and (DATA / "tls" / "ca.crt").read_bytes() == ca
    box.start()
    with box.client() as client:
        login = client.post("/api/auth/login", json={"username": "keeper", "password": "kept-across-upgrades"})
        assert login.status_code == 200, login.text


def test_remove_keeps_data_and_purge_leaves_nothing(box: Box) -> None:
    box.stop()
    files = subprocess.run(["dpkg-query", "-L", "opencall"], capture_output=True, text=True).stdout.split("\n")
    ours = [Path(p) for p in files if p.startswith(("/opt/opencall", "/etc/opencall", "/usr/share/doc/opencall"))
            or p in ("/usr/bin/opencall", "/lib/systemd/system/opencall.service",
                     "/usr/share/man/man1/opencall.1.gz", "/usr/share/lintian/overrides/opencall")]
    assert len(ours) > 100

    assert dpkg("-r", "opencall").returncode == 0
    assert not Path("/usr/bin/opencall").exists() and not PREFIX.exists()
    assert (DATA / "opencall.db").exists() and CONFIG.exists()  # remove keeps data and config

    assert dpkg("-P", "opencall").returncode == 0
    left = [str(p) for p in [*ours, DATA, LOGS] if p.exists() or p.is_symlink()]
    assert left == []
    assert subprocess.run(["dpkg-query", "-W", "opencall"], capture_output=True).returncode != 0
    systemd_state = [str(p) for p in Path("/etc/systemd/system").rglob("opencall*")]
    systemd_state += [str(p) for p in Path("/var/lib/systemd").glob("deb-systemd-*/**/opencall*")]
    assert systemd_state == []


def test_lintian_is_clean(box: Box) -> None:
    output, _ = box.lintian.communicate(timeout=600)
    problems = [line for line in output.splitlines() if line.startswith(("E:", "W:"))]
    assert (box.lintian.returncode, problems) == (0, []), output
