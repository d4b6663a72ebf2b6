"""The arm64 .deb (a Raspberry Pi's), cross-built on this machine and run under a real systemd in an arm64 Debian 12
rootfs, emulated by qemu-user through binfmt_misc (tests/appliance/nspawn.py boots it in a test LAN's box
namespace, as the amd64 test does).

``packaging/build-deb --arch arm64`` fetches the dependencies' aarch64 wheels with pip (no compiler). Then the
package is installed with dpkg in the container, and a phone on the LAN checks healthz and gets a TURN allocation
(which, in no call, may relay nowhere); ``opencall doctor`` in the box passes, its relay self-test included (a
packet echoed through an allocation). Figures (start to READY=1, idle memory) are
printed labelled "under qemu-user": emulation makes every code path slow the first time it runs (qemu translates
it) and adds qemu's own memory, so they are not a Raspberry Pi's figures; the guest's own resident memory is
comparable to amd64's.

The tests run in file order as one installation's life; the module fixture tears everything down.
"""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.nspawn import Container, booted, build_deb, ensure_container_tools
from tests.lan.box import fetch

ARCH = "arm64"
EM_AARCH64 = 183  # ELF e_machine (elf.h)
# qemu-user maps the guest at guest_base 0 on x86-64 hosts: the guest's mappings (the arm64 python, its heap and
# libraries) lie below this address, qemu's own (its binary, heap and translation cache) above it.
QEMU_SPLIT = 0x5555_0000_0000

# A TURN allocation over UDP from the phone with credentials minted from the box's secret, then a packet to the
# phone's own echo: the relay must refuse that permission (403), since under the default `turn.peer_policy: call`
# a principal in no call may relay nowhere. (opencall doctor relays a packet through the box's own addresses.)
RELAY_ATTEMPT = """
import asyncio, json, sys
from aioice.turn import create_turn_endpoint
from turn.credentials import make_credentials

box, phone, secret = sys.argv[1:4]

class Receiver(asyncio.DatagramProtocol):
    def __init__(self):
        self.received = asyncio.Queue()
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.received.put_nowait(("data", data.decode()))
    def error_received(self, exc):
        self.received.put_nowait(("error", getattr(getattr(exc, "response", None), "error_code", repr(exc))))

class Echo(Receiver):
    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

async def main():
    creds = make_credentials(secret, "phone", 600)
    transport, client = await asyncio.wait_for(create_turn_endpoint(
        Receiver, (box, 3478), creds.username, creds.credential, transport="udp"), 30)
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=(phone, 0))
    try:
        transport.sendto(b"through the arm64 relay", echo.get_extra_info("sockname"))
        outcome = await asyncio.wait_for(client.received.get(), 30)
        print(json.dumps({"relayed": list(transport.get_extra_info("sockname")), "outcome": list(outcome)}))
    finally:
        echo.close()
        transport.close()
        await asyncio.sleep(0.1)

asyncio.run(main())
"""


def elf_machine(data: bytes) -> int:
    """e_machine of an ELF file's header (little-endian, as both amd64 and arm64 are)."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return int(struct.unpack_from("<H", data, 18)[0])


def guest_rss_kib(smaps: str) -> int:
    """Resident memory of the emulated program itself: the Rss of its mappings below :data:`QEMU_SPLIT`."""
    total = 0
    start = 0
    for line in smaps.splitlines():
        header = re.match(r"^([0-9a-f]+)-[0-9a-f]+ ", line)
        if header:
            start = int(header[1], 16)
        elif line.startswith("Rss:") and start < QEMU_SPLIT:
            total += int(line.split()[1])
    return total


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_container_tools(ARCH)
    started = time.monotonic()
    built = build_deb(tmp_path_factory.mktemp("dist-arm64"), arch=ARCH)
    print(f"\narm64 .deb cross-built in {time.monotonic() - started:.1f} s")
    return built


@pytest.fixture(scope="module")
def container(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    workdir = tmp_path_factory.mktemp("nspawn-arm64")
    with booted(workdir, [deb], arch=ARCH, boot_timeout=300) as machine:
        yield machine
        print(f"\narm64 systemd container figures (under qemu-user): {json.dumps(machine.figures)}")


def test_the_package_is_arm64_throughout(deb: Path) -> None:
    """Control fields for arm64, and every ELF file in it (the wheels' extension modules) built for aarch64."""
    fields = {name: subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                                   check=True).stdout.strip() for name in ("Architecture", "Depends")}
    assert deb.name.endswith("_arm64.deb") and fields["Architecture"] == "arm64"
    assert re.search(r"libc6 \(>= 2\.\d+\)", fields["Depends"]), fields
    assert "python3 (>= 3.11)" in fields["Depends"], fields
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    machines: dict[str, int] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".so"):
                handle = archive.extractfile(member)
                assert handle is not None
                machines[member.name] = elf_machine(handle.read(20))
        command = archive.extractfile("./opt/opencall/bin/opencall")
        assert command is not None
        shebang = command.readline()
    assert len(machines) > 10, machines  # cryptography, uvloop, httptools, ujson, yaml, zeroconf, ...
    assert {name for name, machine in machines.items() if machine != EM_AARCH64} == set()
    assert shebang == b"#!/opt/opencall/bin/python\n"  # the environment's own interpreter, not the build host's


def test_lintian_finds_nothing(deb: Path) -> None:
    done = subprocess.run(["lintian", "--fail-on", "error,warning", str(deb)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_install_starts_the_service_under_emulation(container: Container) -> None:
    assert container.run("dpkg", "--print-architecture").stdout.strip() == "arm64"
    assert container.run("/usr/bin/python3", "-c", "import platform; print(platform.machine())").stdout.strip() \
        == "aarch64"
    started = time.monotonic()
    deb = next((container.root / "root").glob("opencall_*.deb")).name
    container.run("dpkg", "-i", f"/root/{deb}", timeout=600)
    container.wait_active(timeout=300)
    container.figures["install to active seconds"] = round(time.monotonic() - started, 2)
    assert container.show("Type") == "notify"
    assert container.show("User") == "opencall"
    start = int(container.show("ExecMainStartTimestampMonotonic"))
    ready = int(container.show("ActiveEnterTimestampMonotonic"))
    container.figures["start to ready seconds"] = round((ready - start) / 1e6, 2)


def test_healthz_from_a_phone_on_the_lan(container: Container) -> None:
    status, body = fetch(container.phone, container.url("/healthz"))
    assert (status, body["status"], body["database"], body["relay"]) == (200, "ok", "ok", "ok"), body


def test_a_turn_allocation_on_the_lan(container: Container) -> None:
    """The phone gets an allocation on the box's LAN address; relaying to itself, outside any call, is refused."""
    secret = (container.root / "var/lib/opencall/turn-secret").read_text().strip()
    done = subprocess.run(container.phone.exec_argv(sys.executable, "-c", RELAY_ATTEMPT, container.box.ipv4 or "",
                                                    container.phone.ipv4 or "", secret),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["relayed"][0] == container.box.ipv4, answer  # the relay address phones are given: the LAN's
    assert answer["outcome"] == ["error", 403], answer


def test_doctor_with_no_arguments_passes(container: Container) -> None:
    done = container.run("opencall", "doctor", check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout, done.stdout
    assert re.search(r"relay.*echo|echo.*relay", done.stdout, re.IGNORECASE), done.stdout


def test_idle_memory(container: Container) -> None:
    """Measured after a restart and a quiet while, as on amd64; the guest's part is the comparable figure."""
    container.run("systemctl", "restart", "opencall", timeout=300)
    pid = container.wait_active(timeout=300)
    start = int(container.show("ExecMainStartTimestampMonotonic"))
    ready = int(container.show("ActiveEnterTimestampMonotonic"))
    container.figures["restart: start to ready seconds"] = round((ready - start) / 1e6, 2)
    time.sleep(10)
    status = container.run("cat", f"/proc/{pid}/status").stdout
    total_kib = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)[1])  # type: ignore[index]
    smaps = container.run("cat", f"/proc/{pid}/smaps").stdout
    # The split holds only if the arm64 interpreter itself is mapped below it (guest_base 0).
    python_maps = [int(line.split("-")[0], 16) for line in smaps.splitlines() if line.rstrip().endswith("python3.11")]
    assert python_maps and max(python_maps) < QEMU_SPLIT, "qemu-user did not map the guest where expected"
    guest_kib = guest_rss_kib(smaps)
    container.figures["idle RSS MiB (process total, qemu included)"] = round(total_kib / 1024, 1)
    container.figures["idle RSS MiB (arm64 guest)"] = round(guest_kib / 1024, 1)
    assert 0 < guest_kib < total_kib
    assert guest_kib < 400 * 1024
