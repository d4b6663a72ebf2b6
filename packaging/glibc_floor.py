"""Print the oldest glibc that every wheel in a folder runs on (from manylinux tags), e.g. ``2.28``.

Usage: glibc_floor.py WHEEL_DIR   (the package's libc6 dependency)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
TAG = re.compile(r"(manylinux_(\d+)_(\d+)|manylinux1|manylinux2010|manylinux2014)_")


def wheel_floor(name: str) -> tuple[int, int] | None:
    """The lowest glibc any platform tag of this wheel accepts; None for pure-Python wheels."""
    floors = []
    for match in TAG.finditer(name):
        if match.group(2):
            floors.append((int(match.group(2)), int(match.group(3))))
        else:
            floors.append(LEGACY[match.group(1)])
    return min(floors) if floors else None


def floor(folder: Path) -> tuple[int, int]:
    found = [f for f in (wheel_floor(w.name) for w in folder.glob("*.whl")) if f is not None]
    return max(found, default=(2, 17))


if __name__ == "__main__":
    major, minor = floor(Path(sys.argv[1]))
    print(f"{major}.{minor}")
