"""The .deb under a real systemd: a minimal Debian 12 booted with systemd-nspawn on a test LAN.

This machine's PID 1 is not systemd, so a container boots one (docs: /work/shared/design.md, "Testing under a
real systemd"). The rootfs (``debootstrap --variant=minbase`` with systemd and every dependency of the package)
is cached under ``~/.cache/opencall-tests`` keyed by its package list; each run boots a copy of it. The
container runs in the box's namespace of a :class:`~tests.lan.netlab.Lan` (``--network-namespace-path``), so
the package's default config (every interface, mDNS on) runs as shipped and multicasts only on the test LAN;
a phone's namespace on the same bridge is the client. The freshly built .deb is installed with dpkg (the
container has no route to a mirror, and needs none: its dependencies are in the cached rootfs).

The tests run in file order as one installation's life; the module fixture tears everything down (the
container, its copy of the rootfs, the namespaces) whatever happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from tests.appliance.tools import REPO, ensure_debian_tools
from tests.lan.box import fetch
from tests.lan.netlab import Host, Lan

SUITE = "bookworm"
# python3, adduser and init-system-helpers: the package's Depends (packaging/control.in); libc6 is in minbase.
INCLUDE = ("systemd", "systemd-sysv", "dbus", "python3", "adduser", "init-system-helpers")
CONTAINER_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "ip": "iproute2"}
CACHE = Path(os.environ.get("OPENCALL_TEST_CACHE", Path.home() / ".cache" / "opencall-tests"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PORT = 8443
PASSWORD = "secret123"
# What the package leaves on a system until it is purged.
PACKAGE_PATHS = ("etc/opencall", "var/lib/opencall", "var/log/opencall", "opt/opencall",
                 "lib/systemd/system/opencall.service", "usr/bin/opencall", "usr/share/doc/opencall",
                 "etc/systemd/system/multi-user.target.wants/opencall.service")
# Paths that change on any running Debian whatever is installed (journal, systemd's and dpkg's own state).
CHURN = ("var/log/journal", "var/lib/systemd/", "var/lib/dpkg/", "var/cache/debconf/", "var/log/", "tmp/", "var/tmp/",
         "etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-")

LOGIN = """
import json, sys, httpx
with httpx.Client(verify=sys.argv[2], timeout=10) as client:
    login = client.post(sys.argv[1] + "/api/auth/login", json={"username": "alice", "password": sys.argv[3]})
    me = client.get(sys.argv[1] + "/api/auth/me")
print(json.dumps({"login": login.status_code, "me": me.status_code, "body": me.text}))
"""
HISTORY = """
import json, sys, httpx
with httpx.Client(verify=sys.argv[2], timeout=10) as client:
    assert client.post(sys.argv[1] + "/api/auth/login", json={"username": "alice", "password": sys.argv[3]}).is_success
    print(json.dumps(client.get(sys.argv[1] + "/api/call-history").json()["calls"]))
"""
PEER_CERT = """
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[3])
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname=sys.argv[1]) as tls:
        sys.stdout.buffer.write(tls.getpeercert(binary_form=True))
"""

# Alice (signed in) calls a guest "Phone", which answers; both stay in the call until the server goes away.
IN_A_CALL = """
import asyncio, sys, httpx, socketio
URL, CA, PASSWORD = sys.argv[1:4]
SDP = "v=0\\r\\no=- a 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n"

async def party(cookie=None):
    client, events, gone = socketio.AsyncClient(reconnection=False, ssl_verify=False), asyncio.Queue(), asyncio.Event()
    client.on("*", lambda event, *args: events.put_nowait((event, args[0] if args else None)))
    client.on("disconnect", lambda *reason: gone.set())
    await client.connect(URL, headers={"Cookie": cookie} if cookie else {}, transports=["websocket"])
    return client, events, gone

async def until(events, name):
    while True:
        event, payload = await asyncio.wait_for(events.get(), 10)
        if event == name:
            return payload

async def main():
    with httpx.Client(verify=CA, timeout=10) as http:
        assert http.post(URL + "/api/auth/login", json={"username": "alice", "password": PASSWORD}).is_success
        cookie = "opencall_session=" + http.cookies["opencall_session"]
    (alice, alice_events, alice_gone), (phone, phone_events, phone_gone) = await party(cookie), await party()
    await alice.emit("register", {})
    alice_id = (await until(alice_events, "registered"))["callId"]
    await phone.emit("register", {"displayName": "Phone"})
    phone_id = (await until(phone_events, "registered"))["callId"]
    await alice.emit("call", {"targetCallId": phone_id, "offer": {"type": "offer", "sdp": SDP}})
    await until(phone_events, "incoming-call")
    await phone.emit("answer", {"targetCallId": alice_id, "answer": {"type": "answer", "sdp": SDP}})
    await until(alice_events, "call-answered")
    print("in a call", flush=True)
    await asyncio.wait_for(asyncio.gather(alice_gone.wait(), phone_gone.wait()), 60)
    print("disconnected", flush=True)

asyncio.run(main())
"""


def ensure_container_tools() -> None:
    """debootstrap and systemd-nspawn from apt when missing: these tests fail, never skip, without them."""
    ensure_debian_tools()
    missing = sorted({pkg for tool, pkg in CONTAINER_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    assert os.geteuid() == 0, "booting a container needs root"


def mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap needs one; the container never does)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", sources.read_text(), re.MULTILINE)
        if match:
            return match[1]
    return DEFAULT_MIRROR


def cached_rootfs() -> Path:
    """The minimal Debian rootfs, built once (into a temporary folder renamed into place: a half-built one is
    never used) and kept under :data:`CACHE` keyed by suite, architecture and package list."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256(" ".join((SUITE, arch, *INCLUDE)).encode()).hexdigest()[:12]
    root = CACHE / f"rootfs-{SUITE}-{arch}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"rootfs-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs wait for one build
        if (root / "usr" / "bin" / "python3").exists():
            return root
        building = Path(tempfile.mkdtemp(prefix=f".rootfs-{key}-", dir=CACHE))
        try:
            done = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(building / "root"),
                 mirror()], capture_output=True, text=True, timeout=1200)
            assert done.returncode == 0, f"debootstrap failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            # Nothing the tests need from apt later: its lists and downloaded packages only take room.
            shutil.rmtree(building / "root" / "var" / "cache" / "apt" / "archives", ignore_errors=True)
            (building / "root").rename(root)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return root


def build_deb(out: Path, source: Path = REPO) -> Path:
    """The .deb that ``source``'s own packaging/build-deb makes (this checkout's by default)."""
    done = subprocess.run([str(source / "packaging" / "build-deb"), "--out", str(out)], capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


def tree(root: Path) -> dict[str, int]:
    """Every path under ``root`` (symlinks not followed) with its owner's uid, relative to ``root``."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder, name)
            found[str(path.relative_to(root))] = path.lstat().st_uid
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Container:
    """A booted copy of the rootfs in ``box``'s network namespace."""

    root: Path
    box: Host
    phone: Host
    workdir: Path
    nspawn: subprocess.Popen[bytes] | None = None
    init_pid: int = 0
    figures: dict[str, float | str] = field(default_factory=dict)
    baseline: set[str] = field(default_factory=set)  # the rootfs's files before the package came

    def boot(self, timeout: float = 120) -> None:
        started = time.monotonic()
        console = (self.workdir / "nspawn.log").open("ab")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit", "--console=passive",
             f"--machine={self.box.netns}", f"--network-namespace-path=/run/netns/{self.box.netns}"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console)
        deadline = started + timeout
        while not self.init_pid:
            assert self.nspawn.poll() is None, f"systemd-nspawn exited:\n{self.console()}"
            assert time.monotonic() < deadline, f"no container init in {timeout} s:\n{self.console()}"
            for child in children(self.nspawn.pid):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        self.init_pid = child
            time.sleep(0.1)
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the container did not finish booting ({state!r}):\n{self.console()}")
        self.figures["boot seconds"] = round(time.monotonic() - started, 2)
        self.figures["system state"] = state

    def console(self) -> str:
        return (self.workdir / "nspawn.log").read_text(errors="replace")[-4000:]

    def run(self, *argv: str, stdin: str = "", check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the container (every namespace of its PID 1), with a plain root environment."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
               "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["nsenter", "-t", str(self.init_pid), "-a", *argv], input=stdin, capture_output=True,
                              text=True, timeout=timeout, env=env)
        if check:
            assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    def show(self, prop: str) -> str:
        return self.run("systemctl", "show", "-p", prop, "--value", "opencall").stdout.strip()

    def wait_active(self, timeout: float = 90, unless_pid: str = "") -> str:
        """Wait until opencall is active (Type=notify: READY=1 was sent) with a main PID other than
        ``unless_pid``; returns that PID."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = self.run("systemctl", "is-active", "opencall", check=False).stdout.strip()
            pid = self.show("MainPID")
            if active == "active" and pid not in ("0", unless_pid):
                return pid
            assert active != "failed", self.journal()
            time.sleep(0.2)
        raise AssertionError(f"opencall not active in {timeout} s:\n{self.journal()}")

    def journal(self) -> str:
        return self.run("journalctl", "-u", "opencall", "--no-pager", "-o", "short-monotonic", check=False).stdout

    def url(self, path: str = "") -> str:
        return f"https://{self.box.ipv4}:{PORT}{path}"

    def ca_cert(self) -> Path:
        """The local CA's certificate, copied out of the container for the phone."""
        copy = self.workdir / "ca.crt"
        shutil.copyfile(self.root / "var/lib/opencall/tls/ca.crt", copy)
        return copy

    def served_cert(self) -> x509.Certificate:
        """The certificate the box serves to the phone, verified against the box's CA."""
        done = subprocess.run(self.phone.exec_argv(sys.executable, "-c", PEER_CERT, self.box.ipv4 or "",
                                                   str(PORT), str(self.ca_cert())), capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr.decode()
        return x509.load_der_x509_certificate(done.stdout)

    def stop(self) -> None:
        """Power the container off (SIGTERM to nspawn), then kill whatever is left of it."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.terminate()
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(timeout=10)
        if self.init_pid and alive(self.init_pid):  # killing a PID namespace's init kills all of it
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(self.init_pid) and time.monotonic() < deadline:
                time.sleep(0.1)


@contextlib.contextmanager
def booted(workdir: Path, debs: list[Path]) -> Iterator[Container]:
    """A copy of the cached rootfs with ``debs`` in /root, booted in a test LAN's box namespace; powered off
    and deleted (with the namespaces) whatever happens."""
    ensure_container_tools()
    started = time.monotonic()
    rootfs = cached_rootfs()
    rootfs_seconds = time.monotonic() - started
    copy = Path(tempfile.mkdtemp(prefix="oc-rootfs-", dir="/var/tmp"))
    machine: Container | None = None
    try:
        subprocess.run(["cp", "-a", f"{rootfs}/.", str(copy)], check=True, timeout=300)
        for deb in debs:
            shutil.copyfile(deb, copy / "root" / deb.name)
        with Lan() as lan:
            box, phone = lan.add_host("box", 10), lan.add_host("ph1", 21)
            machine = Container(root=copy, box=box, phone=phone, workdir=workdir)
            machine.figures["rootfs seconds (cache)"] = round(rootfs_seconds, 2)
            machine.boot()
            machine.baseline = set(tree(copy))
            yield machine
    finally:
        if machine is not None:
            machine.stop()
        shutil.rmtree(copy, ignore_errors=True)


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    ensure_container_tools()
    workdir = tmp_path_factory.mktemp("nspawn")
    with booted(workdir, [build_deb(workdir / "dist")]) as machine:
        yield machine
        print(f"\nsystemd container figures: {json.dumps(machine.figures)}")


def test_install_starts_the_service_as_type_notify(container: Container) -> None:
    started = time.monotonic()
    deb = next((container.root / "root").glob("opencall_*.deb")).name
    container.run("dpkg", "-i", f"/root/{deb}", timeout=300)
    container.wait_active()
    container.figures["install to active seconds"] = round(time.monotonic() - started, 2)
    assert container.show("Type") == "notify"
    assert container.run("systemctl", "is-enabled", "opencall").stdout.strip() == "enabled"
    # From the fork of the main process to READY=1 (systemd's own timestamps, microseconds).
    start = int(container.show("ExecMainStartTimestampMonotonic"))
    ready = int(container.show("ActiveEnterTimestampMonotonic"))
    container.figures["start to ready seconds"] = round((ready - start) / 1e6, 2)
    assert container.show("User") == "opencall"


def test_healthz_from_a_phone_on_the_lan(container: Container) -> None:
    status, body = fetch(container.phone, container.url("/healthz"))
    assert (status, body["status"], body["database"], body["relay"]) == (200, "ok", "ok", "ok"), body


def test_doctor_with_no_arguments_passes(container: Container) -> None:
    done = container.run("opencall", "doctor", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout, done.stdout
    assert re.search(r"relay.*echo|echo.*relay", done.stdout, re.IGNORECASE), done.stdout


def test_user_add_then_login_over_https(container: Container) -> None:
    container.run("opencall", "user", "add", "alice", "--email", "alice@example.org", stdin=f"{PASSWORD}\n")
    owner = container.run("stat", "-c", "%U", "/var/lib/opencall/opencall.db").stdout.strip()
    assert owner == "opencall"  # root's `user add` left nothing the service cannot write
    done = subprocess.run(container.phone.exec_argv(sys.executable, "-c", LOGIN, container.url(),
                                                    str(container.ca_cert()), PASSWORD),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["login"], answer["me"]) == (200, 200), answer
    assert json.loads(answer["body"])["username"] == "alice"


def test_idle_memory(container: Container) -> None:
    pid = container.show("MainPID")
    status = container.run("cat", f"/proc/{pid}/status").stdout
    rss_kib = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)[1])  # type: ignore[index]
    container.figures["idle RSS MiB"] = round(rss_kib / 1024, 1)
    assert rss_kib < 400 * 1024


def test_reload_reads_the_certificate_again(container: Container) -> None:
    """A new LAN address (a DHCP change): ``systemctl reload`` re-issues the certificate for it, same process."""
    pid = container.show("MainPID")
    before = container.served_cert()
    container.box.ip("addr", "add", "192.168.50.11/24", "dev", "eth0")
    try:
        container.run("systemctl", "reload", "opencall")
        deadline = time.monotonic() + 30
        while "certificate loaded from" not in container.journal().split("Reloading", 1)[-1]:
            assert time.monotonic() < deadline, container.journal()
            time.sleep(0.2)
        after = container.served_cert()
        names = after.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "192.168.50.11" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
        assert after.serial_number != before.serial_number
        assert container.show("MainPID") == pid
        assert "server certificate re-issued" in container.journal()
    finally:
        container.box.ip("addr", "del", "192.168.50.11/24", "dev", "eth0", check=False)


def test_kill_9_restarts_the_service(container: Container) -> None:
    pid = container.show("MainPID")
    container.run("sh", "-c", f"kill -9 {pid}")  # the shell's kill: a minbase system has no procps
    started = time.monotonic()
    new_pid = container.wait_active(timeout=60, unless_pid=pid)
    container.figures["kill -9 to active again seconds"] = round(time.monotonic() - started, 2)
    assert container.show("NRestarts") == "1"
    assert new_pid != pid
    status, body = fetch(container.phone, container.url("/healthz"))
    assert status == 200, body


def test_journal_has_the_service_log(container: Container) -> None:
    journal = container.journal()
    assert "status=9/KILL" in journal, journal
    assert re.search(r"opencall\[\d+\]: .* INFO ", journal), journal  # the service's own lines (stderr)
    assert len(re.findall(r"Started opencall\.service", journal)) >= 2, journal


def test_security_exposure(container: Container) -> None:
    done = container.run("systemd-analyze", "security", "--no-pager", "opencall.service")
    match = re.search(r"Overall exposure level for opencall\.service:\s*([\d.]+)", done.stdout)
    assert match, done.stdout
    container.figures["exposure"] = float(match[1])
    assert float(match[1]) <= 2.0, done.stdout


def test_stop_with_a_call_in_progress(container: Container) -> None:
    """``systemctl stop`` mid-call: done well within TimeoutStopSec, cleanly, and the call is recorded."""
    call = subprocess.Popen(container.phone.exec_argv(sys.executable, "-c", IN_A_CALL, container.url(),
                                                      str(container.ca_cert()), PASSWORD),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert call.stdout is not None
        line = call.stdout.readline()
        assert line.strip() == "in a call", line + call.stderr.read() if call.stderr else ""
        started = time.monotonic()
        container.run("systemctl", "stop", "opencall", timeout=60)
        took = time.monotonic() - started
        container.figures["stop seconds (one call in progress)"] = round(took, 2)
        out, err = call.communicate(timeout=30)
        assert "disconnected" in out, err
    finally:
        if call.poll() is None:
            call.kill()
            call.wait()
    assert container.show("TimeoutStopUSec") == "30s"  # systemd/opencall.service
    assert took < 30, f"stopping took {took:.1f} s"
    assert container.show("Result") == "success"  # not "timeout": systemd did not have to SIGKILL it
    assert re.search(r"Deactivated successfully|Stopped opencall\.service", container.journal())
    container.run("systemctl", "start", "opencall")
    container.wait_active()
    done = subprocess.run(container.phone.exec_argv(sys.executable, "-c", HISTORY, container.url(),
                                                    str(container.ca_cert()), PASSWORD),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = json.loads(done.stdout)
    assert [(c["direction"], c["peer"], c["status"]) for c in calls] == [("outgoing", "Phone", "answered")], calls


def test_purge_leaves_nothing(container: Container) -> None:
    container.run("dpkg", "--purge", "opencall", timeout=120)
    assert container.run("systemctl", "is-active", "opencall", check=False).stdout.strip() != "active"
    left = [path for path in PACKAGE_PATHS if os.path.lexists(container.root / path)]
    assert left == []
    # The system user stays (Debian's convention, packaging/postrm) but owns nothing, and no file the package
    # brought or made is left: only what running a system changes anyway.
    uid = int(re.search(r"^opencall:x:(\d+):", (container.root / "etc/passwd").read_text(), re.MULTILINE)[1])  # type: ignore[index]
    now = tree(container.root)
    assert [path for path, owner in now.items() if owner == uid] == []
    new = sorted(path for path in set(now) - container.baseline if not path.startswith(CHURN))
    assert new == []
    container.run("systemctl", "daemon-reload")
    assert container.run("systemctl", "cat", "opencall.service", check=False).returncode != 0
    assert "opencall" not in container.run("dpkg-query", "-W", "-f=${Package}\n", check=False).stdout.split()
