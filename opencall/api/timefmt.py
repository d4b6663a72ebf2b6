"""The two timestamp formats of api.md."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """``2026-06-17T09:30:00.000Z``"""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sql_utc(moment: datetime) -> str:
    """``2026-06-16 09:12:44`` (UTC, no suffix)"""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
