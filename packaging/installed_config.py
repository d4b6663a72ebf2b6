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
# Check them with:    sudo opencall check-config ; sudo opencall doctor   (every opencall command reads this file)
"""
PATHS = {"data_dir": "/var/lib/opencall", "log_file": "/var/log/opencall/opencall.log"}
# Section keys whose installed value differs from the embedded default: (section, key) -> value.
SECTION_VALUES = {("mdns", "enabled"): "true"}  # an appliance announces itself; a developer's checkout does not


def installed(example: str) -> str:
    """``example`` with data_dir and log_file pointing at the directories systemd gives the service, and
    mDNS turned on."""
    text = example
    for key, path in PATHS.items():
        pattern = re.compile(rf"^{key}:[ \t]*\S+", re.MULTILINE)
        text, count = pattern.subn(f"{key}: {path}", text)
        if count != 1:
            raise SystemExit(f"installed_config: no single top-level {key} line in the example")
    for (section, key), value in SECTION_VALUES.items():
        # The key's line inside the section: indented lines after "section:" up to the next top-level line.
        pattern = re.compile(rf"^({section}:.*\n(?:[ \t]+.*\n|[ \t]*\n)*?[ \t]+{key}:[ \t]*)(\S+ *)", re.MULTILINE)
        text, count = pattern.subn(lambda m, v=value: m[1] + v.ljust(len(m[2])), text)  # comments stay aligned
        if count != 1:
            raise SystemExit(f"installed_config: no single {section}.{key} line in the example")
    return HEADER + text


if __name__ == "__main__":
    sys.stdout.write(installed(Path(sys.argv[1]).read_text(encoding="utf-8")))
