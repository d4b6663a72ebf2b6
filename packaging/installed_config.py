"""Print /etc/opencall/opencall.yaml of the package: the example config with the system's paths.

Usage: installed_config.py opencall.yaml.example > opencall.yaml
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADER = """\
# /etc/opencall/opencall.yaml, installed by the opencall package. Your edits are kept on upgrade.
# Apply changes with: systemctl restart opencall   (a renewed certificate only needs: systemctl reload opencall)
# Check them with:    opencall check-config --config /etc/opencall/opencall.yaml ; opencall doctor
"""
PATHS = {"data_dir": "/var/lib/opencall", "log_file": "/var/log/opencall/opencall.log"}


def installed(example: str) -> str:
    """``example`` with data_dir and log_file pointing at the directories systemd gives the service."""
    text = example
    for key, path in PATHS.items():
        pattern = re.compile(rf"^{key}:[ \t]*\S+", re.MULTILINE)
        text, count = pattern.subn(f"{key}: {path}", text)
        if count != 1:
            raise SystemExit(f"installed_config: no single top-level {key} line in the example")
    return HEADER + text


if __name__ == "__main__":
    sys.stdout.write(installed(Path(sys.argv[1]).read_text(encoding="utf-8")))
