"""Run administrative commands as the owner of data_dir, so root never leaves root-owned files there."""

from __future__ import annotations

import os
from pathlib import Path


def drop_to_owner(data_dir: Path) -> str | None:
    """When running as root and ``data_dir`` belongs to another user, become that user and group.

    ``opencall user add`` run with sudo would otherwise create the database, its WAL files or key files
    as root, and the service (running as ``opencall``) could no longer write them. Returns the user name
    switched to, or None when nothing changed.
    """
    if os.geteuid() != 0:
        return None
    try:
        info = data_dir.stat()
    except FileNotFoundError:
        return None
    if info.st_uid == 0:
        return None
    import pwd  # Unix-only; imported here so the module loads anywhere

    try:
        entry = pwd.getpwuid(info.st_uid)
        name, home = entry.pw_name, entry.pw_dir
    except KeyError:
        name, home = str(info.st_uid), "/"
    os.setgroups([])
    os.setgid(info.st_gid)
    os.setuid(info.st_uid)
    os.environ["HOME"] = home
    return name
