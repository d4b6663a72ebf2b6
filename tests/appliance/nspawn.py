"""Booting the .deb under a real systemd: a minimal Debian 12 rootfs (debootstrap, cached), a copy of it booted with
systemd-nspawn in the box namespace of a test LAN (:class:`~tests.lan.netlab.Lan`), and the scripts a phone runs
against it. Used by test_systemd_container.py (amd64, native), test_arm64_emulation.py (arm64 under qemu-user)
and test_upgrade.py.

This machine's PID 1 is not systemd, so a container boots one (docs/architecture.md, "Testing under a
real systemd"). The rootfs (``debootstrap --variant=minbase`` with systemd and every dependency of the package)
is cached under ``~/.cache/opencall-tests`` keyed by suite, architecture and package list; each run boots a copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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

from cryptography import x509

from tests.appliance.tools import REPO, ensure_debian_tools
from tests.lan.netlab import Host, Lan

SUITE = "bookworm"
# python3, adduser and init-system-helpers: the package's Depends (packaging/control.in); libc6 is in minbase.
INCLUDE = ("systemd", "systemd-sysv", "dbus", "python3", "adduser", "init-system-helpers")
CONTAINER_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "ip": "iproute2"}
CACHE = Path(os.environ.get("OPENCALL_TEST_CACHE", Path.home() / ".cache" / "opencall-tests"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PORT = 8443
PASSWORD = "secret123"
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


# A foreign architecture's rootfs runs under qemu-user through binfmt_misc; cross-building the .deb strips its
# shared objects with that architecture's binutils (packaging/build-deb --arch).
EMULATION_TOOLS = {"arm64": {"qemu-aarch64-static": "qemu-user-static", "update-binfmts": "binfmt-support",
                             "aarch64-linux-gnu-strip": "binutils-aarch64-linux-gnu"}}
BINFMT = {"arm64": "qemu-aarch64"}


def host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env)


def ensure_container_tools(arch: str | None = None) -> None:
    """debootstrap and systemd-nspawn (and, for a foreign ``arch``, qemu-user with its binfmt_misc entry enabled)
    from apt when missing: these tests fail, never skip, without them."""
    ensure_debian_tools()
    assert os.geteuid() == 0, "booting a container needs root"
    tools = dict(CONTAINER_TOOLS)
    foreign = arch is not None and arch != host_arch()
    if foreign:
        assert arch in EMULATION_TOOLS, f"no emulation known for {arch}"
        tools |= EMULATION_TOOLS[arch]
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing:
        apt_install(missing)
    if foreign:
        enable_binfmt(BINFMT[arch])  # type: ignore[index]


def enable_binfmt(name: str) -> None:
    """Register qemu's binfmt_misc entry ``name`` with the F flag (the interpreter is opened at registration, so
    it works inside a chroot or container that lacks it)."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)
    if not (binfmt / name).exists():
        subprocess.run(["update-binfmts", "--enable", name], check=True, capture_output=True)
    entry = (binfmt / name).read_text()
    assert entry.startswith("enabled") and re.search(r"^flags: .*F", entry, re.MULTILINE), entry


def mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap needs one; the container never does)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", sources.read_text(), re.MULTILINE)
        if match:
            return match[1]
    return DEFAULT_MIRROR


def cached_rootfs(arch: str | None = None) -> Path:
    """The minimal Debian rootfs of ``arch`` (this machine's by default), built once (into a temporary folder
    renamed into place: a half-built one is never used) and kept under :data:`CACHE` keyed by suite,
    architecture and package list. A foreign one is built in one stage: binfmt_misc runs its programs."""
    arch = arch or host_arch()
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
                ["debootstrap", f"--arch={arch}", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE,
                 str(building / "root"), mirror()], capture_output=True, text=True, timeout=1200)
            assert done.returncode == 0, f"debootstrap failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            # Nothing the tests need from apt later: its lists and downloaded packages only take room.
            shutil.rmtree(building / "root" / "var" / "cache" / "apt" / "archives", ignore_errors=True)
            (building / "root").rename(root)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return root


def build_deb(out: Path, source: Path = REPO, arch: str | None = None) -> Path:
    """The .deb that ``source``'s own packaging/build-deb makes (this checkout's by default), for ``arch``
    (cross-built when it is not this machine's)."""
    argv = [str(source / "packaging" / "build-deb"), "--out", str(out)] + (["--arch", arch] if arch else [])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
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
    emulated: bool = False  # a foreign architecture under qemu-user

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
        """Power the container off (SIGTERM to nspawn), then kill whatever is left of it. Under qemu-user,
        systemd answers SIGTERM with rescue mode instead of powering off, so an emulated one (a throwaway copy
        of the rootfs) is killed at once."""
        if self.nspawn is not None and self.nspawn.poll() is None and not self.emulated:
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
def booted(workdir: Path, debs: list[Path], arch: str | None = None, boot_timeout: float = 120) -> Iterator[Container]:
    """A copy of the cached rootfs of ``arch`` with ``debs`` in /root, booted in a test LAN's box namespace;
    powered off and deleted (with the namespaces) whatever happens."""
    ensure_container_tools(arch)
    started = time.monotonic()
    rootfs = cached_rootfs(arch)
    rootfs_seconds = time.monotonic() - started
    copy = Path(tempfile.mkdtemp(prefix="oc-rootfs-", dir="/var/tmp"))
    machine: Container | None = None
    try:
        subprocess.run(["cp", "-a", f"{rootfs}/.", str(copy)], check=True, timeout=300)
        for deb in debs:
            shutil.copyfile(deb, copy / "root" / deb.name)
        with Lan() as lan:
            box, phone = lan.add_host("box", 10), lan.add_host("ph1", 21)
            machine = Container(root=copy, box=box, phone=phone, workdir=workdir,
                                emulated=arch is not None and arch != host_arch())
            machine.figures["rootfs seconds (cache)"] = round(rootfs_seconds, 2)
            machine.boot(boot_timeout)
            machine.baseline = set(tree(copy))
            yield machine
    finally:
        if machine is not None:
            machine.stop()
        shutil.rmtree(copy, ignore_errors=True)
