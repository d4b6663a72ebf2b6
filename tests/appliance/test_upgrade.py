"""Upgrading the .deb from the previous release under a real systemd (issue 11, point 5).

The previous release's package is built from its tag (:data:`PREVIOUS`) with that release's own
packaging/build-deb, from ``git archive`` of the tag (a clone of the repository brings its tags; the commit is
on main's history, so its hash is the fallback when a checkout has no tags). The container (the booted rootfs of
test_systemd_container.py, in a test LAN's box namespace) gets that release installed and used: an account, a
call in progress, an invite and an edited conffile; then this checkout's package is installed over it with
``dpkg -i``, as apt does it. Last, a downgrade is attempted with a package that carries the refusal
(packaging/preinst): this checkout's package repacked with a lower version.

The tests run in file order as one installation's life.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.appliance.nspawn import (
    HISTORY,
    IN_A_CALL,
    LOGIN,
    PASSWORD,
    Container,
    booted,
    build_deb,
    ensure_container_tools,
)
from tests.appliance.tools import REPO

PREVIOUS = ("v0.1.0", "4b540a56f73cff1e432acad771309402086d9d00")  # tag, and its commit for a checkout without tags
CONFIG = "/etc/opencall/opencall.yaml"
DOWNGRADE = "0.1.99"  # lower than this checkout's version, and carrying its preinst

INVITE = """
import json, sys, httpx
with httpx.Client(verify=sys.argv[2], timeout=10) as client:
    assert client.post(sys.argv[1] + "/api/auth/login", json={"username": "alice", "password": sys.argv[3]}).is_success
    print(client.post(sys.argv[1] + "/api/invite/generate").json()["token"])
"""
PREVIEW = """
import json, sys, httpx
with httpx.Client(verify=sys.argv[2], timeout=10) as client:
    answer = client.get(sys.argv[1] + "/api/invite/" + sys.argv[3] + "/preview")
print(json.dumps({"status": answer.status_code, "body": answer.json()}))
"""
MIGRATIONS = """
import json, sqlite3
db = sqlite3.connect("file:/var/lib/opencall/opencall.db?mode=ro", uri=True)
print(json.dumps(sorted(row[0] for row in db.execute("SELECT name FROM tortoise_migrations"))))
"""


@dataclass
class Upgrade:
    container: Container
    old: str  # the .deb file names in the container's /root
    new: str
    downgrade: str
    old_version: str
    new_version: str
    state: dict[str, object] = field(default_factory=dict)


def source_of_previous(into: Path) -> str:
    """Extract the previous release's tree into ``into``; returns the ref used (the tag, else its commit)."""
    for ref in PREVIOUS:
        if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{ref}^{{commit}}"],
                          capture_output=True).returncode == 0:
            archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True)
            into.mkdir(parents=True)
            subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
            return ref
    raise AssertionError(f"neither {PREVIOUS[0]} nor {PREVIOUS[1]} is in this checkout (a shallow clone?): "
                         f"git fetch --tags --unshallow")


def repacked(deb: Path, version: str, out: Path) -> Path:
    """``deb`` with its control Version (and the version its preinst compares with) set to ``version``."""
    unpacked = out / "repack"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(unpacked)], check=True)
    old = re.search(r"^Version: (\S+)$", (unpacked / "DEBIAN/control").read_text(), re.MULTILINE)[1]  # type: ignore[index]
    for name in ("control", "preinst"):
        path = unpacked / "DEBIAN" / name
        path.write_text(path.read_text().replace(f"Version: {old}", f"Version: {version}")
                        .replace(f"VERSION={old}", f"VERSION={version}"))
    made = out / deb.name.replace(f"_{old}_", f"_{version}_")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", str(unpacked), str(made)],
                   check=True, capture_output=True)
    shutil.rmtree(unpacked)
    return made


def version_of(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgrade]:
    ensure_container_tools()
    workdir = tmp_path_factory.mktemp("upgrade")
    started = time.monotonic()
    ref = source_of_previous(workdir / "previous")
    old = build_deb(workdir / "dist-old", workdir / "previous")
    new = build_deb(workdir / "dist-new")
    down = repacked(new, DOWNGRADE, workdir)
    build_seconds = round(time.monotonic() - started, 2)
    with booted(workdir, [old, new, down]) as machine:
        machine.figures.update({"previous release": ref, "build seconds (both packages)": build_seconds})
        yield Upgrade(machine, old.name, new.name, down.name, version_of(old), version_of(new))
        print(f"\nupgrade figures: {json.dumps(machine.figures)}")


def on_phone(container: Container, script: str, *args: str) -> str:
    done = subprocess.run(container.phone.exec_argv(sys.executable, "-c", script, container.url(),
                                                    str(container.ca_cert()), *args),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def installed_version(container: Container) -> str:
    return container.run("dpkg-query", "-W", "-f=${Version} ${Status}", "opencall").stdout.strip()


def started_count(container: Container) -> int:
    return len(re.findall(r"Started opencall\.service", container.journal()))


def test_previous_release_installs_and_runs(upgrade: Upgrade) -> None:
    container = upgrade.container
    assert upgrade.old_version == "0.1.0" and upgrade.new_version != upgrade.old_version
    container.run("dpkg", "-i", f"/root/{upgrade.old}", timeout=300)
    container.wait_active()
    assert installed_version(container) == f"{upgrade.old_version} install ok installed"
    assert container.run("opencall", "version").stdout.split() == ["opencall", upgrade.old_version]


def test_previous_release_in_use(upgrade: Upgrade) -> None:
    """An account, an invite, an edited conffile, and a call in progress when the upgrade comes."""
    container = upgrade.container
    # 0.1.0's commands need --config (finding the installed config by themselves came in 0.2.0).
    container.run("opencall", "user", "add", "alice", "--email", "alice@example.org", "--config", CONFIG,
                  stdin=f"{PASSWORD}\n")
    assert json.loads(json.loads(on_phone(container, LOGIN, PASSWORD))["body"])["username"] == "alice"
    upgrade.state["invite"] = on_phone(container, INVITE, PASSWORD).strip()
    container.run("sed", "-i", "s/^ring_timeout: 45 /ring_timeout: 30 /", CONFIG)
    assert re.search(r"^ring_timeout: 30 ", (container.root / CONFIG.lstrip("/")).read_text(), re.MULTILINE)
    upgrade.state["migrations"] = json.loads(container.run("python3", "-c", MIGRATIONS).stdout)
    call = subprocess.Popen(container.phone.exec_argv(sys.executable, "-c", IN_A_CALL, container.url(),
                                                      str(container.ca_cert()), PASSWORD),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    upgrade.state["call"] = call
    assert call.stdout is not None
    line = call.stdout.readline()
    assert line.strip() == "in a call", line + (call.stderr.read() if call.stderr else "")


def test_upgrade_restarts_the_service_once(upgrade: Upgrade) -> None:
    container = upgrade.container
    invocation, pid, starts = container.show("InvocationID"), container.show("MainPID"), started_count(container)
    started = time.monotonic()
    # As apt runs it, keeping the operator's conffile (apt asks; its default answer keeps it).
    done = container.run("dpkg", "-i", "--force-confdef", "--force-confold", f"/root/{upgrade.new}", timeout=300)
    container.wait_active(unless_pid=pid)
    container.figures["upgrade to active seconds"] = round(time.monotonic() - started, 2)
    assert installed_version(container) == f"{upgrade.new_version} install ok installed", done.stdout
    assert container.show("InvocationID") != invocation
    assert started_count(container) == starts + 1, container.journal()
    assert container.show("NRestarts") == "0"  # stopped and started by the package, never crashed
    call: subprocess.Popen[str] = upgrade.state["call"]  # type: ignore[assignment]
    try:
        out, err = call.communicate(timeout=30)
    finally:
        if call.poll() is None:
            call.kill()
            call.wait()
    assert "disconnected" in out, err
    assert container.run("opencall", "version").stdout.split() == ["opencall", upgrade.new_version]


def test_the_edited_conffile_is_kept(upgrade: Upgrade) -> None:
    config = (upgrade.container.root / CONFIG.lstrip("/")).read_text()
    assert re.search(r"^ring_timeout: 30 ", config, re.MULTILINE), config
    # The new release's default lands beside it for the operator to compare.
    shipped = upgrade.container.root / (CONFIG.lstrip("/") + ".dpkg-dist")
    assert shipped.exists() and re.search(r"^ring_timeout: 45 ", shipped.read_text(), re.MULTILINE)


def test_migrations_ran_and_doctor_passes(upgrade: Upgrade) -> None:
    container = upgrade.container
    applied = json.loads(container.run("python3", "-c", MIGRATIONS).stdout)
    shipped = sorted(path.stem for path in (REPO / "opencall/db/migrations").glob("0*.py"))
    assert applied == shipped, (applied, shipped)
    assert set(upgrade.state["migrations"]) <= set(applied)  # type: ignore[arg-type]
    done = container.run("opencall", "doctor", check=False)  # 0.2.0 finds the installed config by itself
    assert done.returncode == 0 and "FAIL" not in done.stdout, done.stdout + done.stderr
    assert re.search(r"database", done.stdout, re.IGNORECASE), done.stdout


def test_account_history_and_invite_survive(upgrade: Upgrade) -> None:
    container = upgrade.container
    answer = json.loads(on_phone(container, LOGIN, PASSWORD))
    assert (answer["login"], answer["me"]) == (200, 200), answer
    calls = json.loads(on_phone(container, HISTORY, PASSWORD))
    # The call in progress was recorded by the old release when the upgrade stopped it.
    assert [(c["direction"], c["peer"], c["status"]) for c in calls] == [("outgoing", "Phone", "answered")], calls
    preview = json.loads(on_phone(container, PREVIEW, str(upgrade.state["invite"])))
    assert (preview["status"], preview["body"]["creatorUsername"]) == (200, "alice"), preview


def test_downgrade_is_refused(upgrade: Upgrade) -> None:
    container = upgrade.container
    done = container.run("dpkg", "-i", f"/root/{upgrade.downgrade}", check=False, timeout=300)
    assert done.returncode != 0, done.stdout
    assert f"opencall: refusing to downgrade from {upgrade.new_version} to {DOWNGRADE}" in done.stderr, done.stderr
    assert installed_version(container) == f"{upgrade.new_version} install ok installed"
    container.wait_active()
    assert container.run("opencall", "version").stdout.split() == ["opencall", upgrade.new_version]
    answer = json.loads(on_phone(container, LOGIN, PASSWORD))
    assert (answer["login"], answer["me"]) == (200, 200), answer
