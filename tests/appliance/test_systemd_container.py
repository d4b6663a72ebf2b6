"""The .deb under a real systemd: a minimal Debian 12 booted with systemd-nspawn on a test LAN (tests/appliance/
nspawn.py has the machinery: the cached rootfs, the container, the phone's scripts).

The container runs in the box's namespace of a :class:`~tests.lan.netlab.Lan` (``--network-namespace-path``), so
the package's default config (every interface, mDNS on) runs as shipped and multicasts only on the test LAN;
a phone's namespace on the same bridge is the client. The freshly built .deb is installed with dpkg (the
container has no route to a mirror, and needs none: its dependencies are in the cached rootfs).

The tests run in file order as one installation's life; the module fixture tears everything down (the
container, its copy of the rootfs, the namespaces) whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from cryptography import x509

from tests.appliance.nspawn import (
    HISTORY,
    IN_A_CALL,
    LOGIN,
    PASSWORD,
    Container,
    booted,
    build_deb,
    ensure_container_tools,
    tree,
)
from tests.appliance.tools import REPO
from tests.lan.box import fetch

# What the package leaves on a system until it is purged.
PACKAGE_PATHS = ("etc/opencall", "var/lib/opencall", "var/log/opencall", "opt/opencall",
                 "lib/systemd/system/opencall.service", "usr/bin/opencall", "usr/share/doc/opencall",
                 "etc/systemd/system/multi-user.target.wants/opencall.service")
# Paths that change on any running Debian whatever is installed (journal, systemd's and dpkg's own state).
CHURN = ("var/log/journal", "var/lib/systemd/", "var/lib/dpkg/", "var/cache/debconf/", "var/log/", "tmp/", "var/tmp/",
         "etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-")


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


def docs_block(heading: str, language: str, index: int = 0) -> str:
    """The ``index``-th fenced ``language`` block under ``heading`` in docs/operations.md."""
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)[index]


def test_the_operator_commands_of_the_docs(container: Container) -> None:
    """Every command of docs/operations.md's "The service" block, as an operator types it (sudo aside)."""
    commands = [line.split("#", 1)[0].strip().removeprefix("sudo ")
                for line in docs_block("## The service", "sh").splitlines() if line.strip()]
    assert len(commands) >= 6, commands
    for command in commands:
        argv = command.split()
        if argv[:2] == ["systemctl", "edit"]:
            continue  # test_a_drop_in_for_port_443 edits one, as the docs say
        if "-f" in argv:  # following the log never ends: it must print the last lines at once
            done = container.run("timeout", "3", *argv, check=False)
            assert done.returncode == 124 and re.search(r"opencall\[\d+\]", done.stdout), command + done.stdout
            continue
        done = container.run(*argv, check=False)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        if argv[0] == "systemctl" and argv[1] in ("reload", "restart"):
            container.wait_active()
    status = container.run("systemctl", "status", "--no-pager", "opencall").stdout
    assert "active (running)" in status and "Main PID" in status, status


def test_a_drop_in_for_port_443(container: Container) -> None:
    """docs/operations.md, "Ports below 1024": without the drop-in, 443 fails with a clear line; with the drop-in
    made by ``systemctl edit`` (the docs' text, typed into the editor), the box serves HTTPS on 443."""
    config = "/etc/opencall/opencall.yaml"
    original = container.run("cat", config).stdout
    container.run("sed", "-i", "s/^  port: 8443/  port: 443/", config)
    editor = container.root / "root" / "editor.sh"  # what the operator types, saved into the file systemctl opens
    editor.write_text(f"#!/bin/sh\ncat > \"$1\" <<'EOF'\n{docs_block('### Ports below 1024', 'ini')}EOF\n")
    editor.chmod(0o755)
    try:
        refused = container.run("systemctl", "restart", "opencall", check=False, timeout=60)
        assert refused.returncode != 0
        assert re.search(r"443.*(permission|not permitted)|(permission|not permitted).*443", container.journal(),
                         re.IGNORECASE), container.journal()[-3000:]
        # systemctl edit wants a terminal: script(1) gives it one
        container.run("script", "-qec", "SYSTEMD_EDITOR=/root/editor.sh systemctl edit opencall", "/dev/null")
        assert container.show("DropInPaths").endswith("/opencall.service.d/override.conf")
        assert "cap_net_bind_service" in container.show("AmbientCapabilities")
        container.run("systemctl", "restart", "opencall", timeout=60)
        container.wait_active()
        status, body = fetch(container.phone, f"https://{container.box.ipv4}:443/healthz")
        assert (status, body["status"]) == (200, "ok"), body
    finally:
        container.run("systemctl", "revert", "opencall", check=False)
        (container.root / "etc/opencall/opencall.yaml").write_text(original)
        editor.unlink(missing_ok=True)
        container.run("systemctl", "reset-failed", "opencall", check=False)
        container.run("systemctl", "restart", "opencall", timeout=60)
        container.wait_active()
    assert (container.show("DropInPaths"), container.show("AmbientCapabilities")) == ("", "")


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
