"""The payloads of the Socket.IO events of api.md: each checked and reduced to the fields that are relayed, or a
:class:`CallError` whose text the sender gets as ``call-error``."""

from __future__ import annotations

from typing import Any, Literal

from opencall.services.callids import is_call_id
from opencall.services.errors import ServiceError
from opencall.services.validation import storable

DISPLAY_NAME_MAX = 32
SDP_MAX = 64 * 1024
CANDIDATE_MAX = 4096

SdpType = Literal["offer", "answer"]


class CallError(ServiceError):
    """Sent back to the sender as ``call-error {message}``."""


def display_name(value: Any) -> str | None:
    """api.md: trimmed, capped at 32 characters, whitespace-only → null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallError("displayName must be a string")
    try:
        value = storable(value, "displayName")
    except ServiceError as refused:
        raise CallError(str(refused)) from None
    return value.strip()[:DISPLAY_NAME_MAX].strip() or None


def payload(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CallError("Payload must be a JSON object")
    return data


def target(data: dict[str, Any], malformed: str = "is not a valid Call ID") -> str:
    target = data.get("targetCallId")
    if not isinstance(target, str) or not target.strip():  # whitespace only names no Call ID either
        raise CallError("targetCallId is required")
    target = target.strip().upper()
    if not is_call_id(target):
        raise CallError(f"{target[:16]} {malformed}")
    return target


def description(data: dict[str, Any], name: str, *types: SdpType) -> dict[str, str]:
    """``data[name]`` as an RTCSessionDescriptionInit whose type is one of ``types`` (default: ``name``)."""
    allowed = types or (name,)
    value = data.get(name)
    if not isinstance(value, dict) or value.get("type") not in allowed or not isinstance(value.get("sdp"), str):
        shown = " | ".join(f"'{kind}'" for kind in allowed)
        raise CallError(f"{name} must be {{type: {shown}, sdp: '…'}}")
    if len(value["sdp"]) > SDP_MAX:
        raise CallError(f"{name} SDP is larger than 64 KiB")
    return {"type": value["type"], "sdp": value["sdp"]}


def candidate(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("candidate")
    if not isinstance(value, dict) or not isinstance(value.get("candidate", ""), str):
        raise CallError("candidate must be an RTCIceCandidateInit object")
    if len(value.get("candidate", "")) > CANDIDATE_MAX:
        raise CallError("candidate is too long")
    kept = {"candidate": value.get("candidate", "")}
    for key, kind in (("sdpMid", str), ("sdpMLineIndex", int), ("usernameFragment", str)):
        if isinstance(value.get(key), kind) and not isinstance(value.get(key), bool):
            kept[key] = value[key]
    return kept
