"""The maintainer scripts against a compromised service user (issue 13, point 5).

The ``opencall`` user owns /var/lib/opencall and /var/log/opencall, so whoever runs code as that user (a
hijacked service) can put anything there, symlinks to root's files included. The package's scripts run as
root: if one of them wrote, chowned or deleted through such a link, it would hand that user root's files
(/etc/shadow, here). Each test plants links as the ``opencall`` user, runs what an operator runs as root
(``dpkg-reconfigure``, ``dpkg -i`` of the same package again, ``dpkg --purge``), and checks that root's files
are as they were (content, owner, mode), that nothing new appeared where the links pointed, and that nothing
outside those two directories came to belong to ``opencall``.

The container is the booted Debian 12 of test_systemd_container.py (tests/appliance/nspawn.py). The tests
run in file order as one installation's life.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.appliance.nspawn import Container, booted, build_deb, ensure_container_tools

DATA, LOGS = "var/lib/opencall", "var/log/opencall"
# Root's files the links point at (relative to the container's root): a real one and canaries made here.
SHADOW, CANARY, CANARY_DIR = "etc/shadow", "etc/opencall-canary", "etc/opencall-canary-dir"
# Where a dangling link points: a script that writes through it as root would create this file.
ABSENT = "etc/opencall-created-through-a-link"
# Where files of the service user may be (its own directories; temporary folders of the sandbox).
USER_PLACES = (DATA, LOGS, "tmp", "var/tmp")


@dataclass
class Install:
    container: Container
    deb: str  # the .deb's file name in the container's /root
    uid: int = 0  # the opencall user's
    victims: dict[str, tuple[int, int, int, str]] = field(default_factory=dict)


def snapshot(root: Path, relative: str) -> tuple[int, int, int, str]:
    """Type and mode, owner, group and a digest of the content of ``relative`` (never following a link)."""
    path = root / relative
    info = path.lstat()
    if stat.S_ISDIR(info.st_mode):
        digest = json.dumps({entry.name: snapshot(root, f"{relative}/{entry.name}") for entry in path.iterdir()})
    elif stat.S_ISLNK(info.st_mode):
        digest = os.readlink(path)
    else:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return info.st_mode, info.st_uid, info.st_gid, digest


def as_service_user(container: Container, script: str) -> None:
    """``script`` run by ``sh`` as the opencall user, as a hijacked service could."""
    container.run("setpriv", "--reuid=opencall", "--regid=opencall", "--init-groups", "--reset-env",
                  "sh", "-ec", script)


def planted(container: Container, *paths: str) -> None:
    """Every path is a symlink now: the attack is in place before root's command runs."""
    for path in paths:
        assert (container.root / path).is_symlink(), f"{path} was not planted"


def owned_by_user_elsewhere(install: Install) -> list[str]:
    """Paths outside :data:`USER_PLACES` that belong to the opencall user (a chown that followed a link)."""
    root = install.container.root
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if Path(folder, name).relative_to(root).as_posix() not in USER_PLACES]
        found += [Path(folder, name).relative_to(root).as_posix() for name in (*dirs, *files)
                  if Path(folder, name).lstat().st_uid == install.uid]
    return found


def assert_root_files_untouched(install: Install) -> None:
    root = install.container.root
    for victim, before in install.victims.items():
        assert snapshot(root, victim) == before, f"/{victim} was changed through a link"
    assert not (root / ABSENT).exists(), f"/{ABSENT} was created through a link"
    assert owned_by_user_elsewhere(install) == []


def assert_fresh_secret(install: Install) -> None:
    """A regular file of the service user's, 0600, with 32 random bytes in hex: the link was replaced."""
    secret = install.container.root / DATA / "turn-secret"
    info = secret.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
    assert info.st_uid == install.uid
    text = secret.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", text), text


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    ensure_container_tools()
    workdir = tmp_path_factory.mktemp("install-scripts")
    started = time.monotonic()
    deb = build_deb(workdir / "dist")
    with booted(workdir, [deb]) as machine:
        machine.figures["build seconds"] = round(time.monotonic() - started, 2)
        yield Install(machine, deb.name)
        print(f"\ninstall scripts figures: {json.dumps(machine.figures)}")


def test_install_and_root_files_to_aim_at(install: Install) -> None:
    container = install.container
    container.run("dpkg", "-i", f"/root/{install.deb}", timeout=300)
    container.wait_active()
    install.uid = int(container.run("id", "-u", "opencall").stdout)
    container.run("sh", "-ec", f"umask 077; echo 'root only' > /{CANARY}; mkdir /{CANARY_DIR}; "
                               f"echo 'root only, inside' > /{CANARY_DIR}/kept")
    install.victims = {path: snapshot(container.root, path) for path in (SHADOW, CANARY, CANARY_DIR)}
    assert install.victims[SHADOW][1] == 0 and install.victims[CANARY][1] == 0
    assert_fresh_secret(install)


def test_reconfigure_follows_no_link_of_the_service_user(install: Install) -> None:
    """The secret gone, its link dangling towards /etc and the temporary name postinst used aimed at /etc/shadow."""
    container = install.container
    as_service_user(container, f"cd /{DATA}; rm -f turn-secret; ln -s /{ABSENT} turn-secret; "
                               f"ln -s /{SHADOW} turn-secret.new")
    planted(container, f"{DATA}/turn-secret", f"{DATA}/turn-secret.new")
    container.run("dpkg-reconfigure", "opencall", timeout=300)
    assert_root_files_untouched(install)
    assert_fresh_secret(install)


def test_reinstall_follows_no_link_of_the_service_user(install: Install) -> None:
    """``dpkg -i`` of the installed version again (preinst, prerm, postinst as in an upgrade)."""
    container = install.container
    as_service_user(container, f"cd /{DATA}; rm -f turn-secret turn-secret.new; ln -s /{CANARY} turn-secret.new; "
                               f"ln -s /{CANARY_DIR} tls-old")
    planted(container, f"{DATA}/turn-secret.new", f"{DATA}/tls-old")
    container.run("dpkg", "-i", f"/root/{install.deb}", timeout=300)
    assert_root_files_untouched(install)
    assert_fresh_secret(install)
    container.wait_active()


def test_purge_follows_no_link_of_the_service_user(install: Install) -> None:
    """Links to root's file and folder in both directories, a log file among them: purge removes the links."""
    container = install.container
    as_service_user(container, f"cd /{DATA}; ln -s /{CANARY} opencall.db-old; ln -s /{CANARY_DIR} backup; "
                               f"cd /{LOGS}; rm -f opencall.log; ln -s /{CANARY} opencall.log; "
                               f"ln -s /{CANARY_DIR} archive")
    planted(container, f"{DATA}/backup", f"{LOGS}/opencall.log", f"{LOGS}/archive")
    container.run("dpkg", "--purge", "opencall", timeout=300)
    assert not (container.root / DATA).exists() and not (container.root / LOGS).exists()
    assert_root_files_untouched(install)
