"""Phones on the test LAN: Debian's Chromium, each in its phone's namespace with its own home folder (and so its
own NSS certificate database), driven by Playwright over a pipe from the test process."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import Browser, Playwright

from tests.lan.netlab import Host
from tests.web.conftest import CHROMIUM

# A phone's browser with its background services off, so the traffic it sends is the app's: no component
# updates, sync, safe-browsing lists, domain reliability reports or field trials.
PHONE_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-field-trial-config",
    "--no-pings",
    "--no-first-run",
    "--no-default-browser-check",
]
NSS_DB = Path(".pki") / "nssdb"


def nss_database(home: Path) -> str:
    """The phone's NSS database (Chromium on Linux reads ``$HOME/.pki/nssdb``), made empty when missing."""
    folder = home / NSS_DB
    if not (folder / "cert9.db").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["certutil", "-N", "-d", f"sql:{folder}", "--empty-password"], check=True,
                       capture_output=True)
    return f"sql:{folder}"


def trust_ca(home: Path, ca_pem: Path, nickname: str = "OpenCall local CA") -> None:
    """Trust ``ca_pem`` for web sites in the phone's NSS database, as a person does once from /trust."""
    subprocess.run(["certutil", "-A", "-d", nss_database(home), "-n", nickname, "-t", "C,,", "-i", str(ca_pem)],
                   check=True, capture_output=True)


def launch_phone(playwright: Playwright, host: Host, home: Path, extra_args: Sequence[str] = ()) -> Browser:
    """Chromium running in ``host``'s namespace (an ``ip netns exec`` wrapper as its executable)."""
    home.mkdir(parents=True, exist_ok=True)
    nss_database(home)
    wrapper = home / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {host.netns} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return playwright.chromium.launch(executable_path=str(wrapper), args=[*PHONE_ARGS, *extra_args],
                                      env={"HOME": str(home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
