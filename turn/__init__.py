"""A standalone STUN/TURN relay (RFC 8489, RFC 8656) for asyncio. It imports nothing from ``opencall``.

Public face: :class:`RelayConfig`, :class:`TurnServer` (``await start()`` / ``await stop()``, live
``counters``) and the time-limited credential helper shared with the app's ``/api/ice-config``.
"""

from turn.config import RelayConfig
from turn.counters import Counters
from turn.credentials import TurnCredentials, credential_for, make_credentials, parse_username
from turn.server import TurnServer

__all__ = [
    "Counters",
    "RelayConfig",
    "TurnCredentials",
    "TurnServer",
    "credential_for",
    "make_credentials",
    "parse_username",
]
