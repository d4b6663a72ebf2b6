"""Helpers of the appliance tests: Debian tools, and GET with a patient timeout (the opencall command and
certificates made for tests are in tests/support.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
# Debian packages these tests use; scripts/test installs them too (apt_install line).
DEBIAN_TOOLS = {"dpkg-deb": "dpkg-dev", "lintian": "lintian", "systemd-analyze": "systemd", "strip": "binutils",
                "setpriv": "util-linux"}


def ensure_debian_tools() -> None:
    """Install the Debian packages of missing tools with apt-get (the tests never skip for want of them)."""
    missing = sorted({pkg for tool, pkg in DEBIAN_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


def http_get(url: str, **kwargs: object) -> httpx.Response:
    """GET with a timeout that survives a busy 2-core machine."""
    return httpx.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]
