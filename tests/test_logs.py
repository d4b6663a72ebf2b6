"""The log file's rotation (opencall.logging_setup.RotatingLogFile)."""

from __future__ import annotations

import logging
from pathlib import Path

from opencall.logging_setup import RotatingLogFile

LINE = "call ABCD2345 -> EFGH6789 ringing on 1 socket(s)"


def _logger(path: Path, max_bytes: int, backups: int) -> tuple[logging.Logger, RotatingLogFile]:
    handler = RotatingLogFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"test-rotation-{path.name}-{max_bytes}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler


def test_rolls_over_once_the_file_reaches_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "opencall.log"
    line_bytes = len(LINE) + 1
    logger, handler = _logger(path, max_bytes=10 * line_bytes, backups=2)
    try:
        for _ in range(25):
            logger.info(LINE)
    finally:
        handler.close()
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    # 10 lines fill a file; the 11th line goes to a fresh one: 10 + 10 + 5.
    assert sizes == {"opencall.log": 5 * line_bytes, "opencall.log.1": 10 * line_bytes,
                     "opencall.log.2": 10 * line_bytes}
    assert path.read_text().splitlines() == [LINE] * 5


def test_keeps_only_the_configured_backups(tmp_path: Path) -> None:
    path = tmp_path / "opencall.log"
    logger, handler = _logger(path, max_bytes=100, backups=1)
    try:
        for number in range(50):
            logger.info("%s %d", LINE, number)
    finally:
        handler.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opencall.log", "opencall.log.1"]
    assert path.read_text().splitlines()[-1] == f"{LINE} 49"


def test_no_rotation_without_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "opencall.log"
    logger, handler = _logger(path, max_bytes=0, backups=3)
    try:
        for _ in range(200):
            logger.info(LINE)
    finally:
        handler.close()
    assert [p.name for p in tmp_path.iterdir()] == ["opencall.log"]
    assert len(path.read_text().splitlines()) == 200
