"""A standalone STUN/TURN relay package. It imports nothing from ``opencall``.

For now it holds the time-limited credential scheme shared by the app (which mints credentials in
``/api/ice-config``) and the relay (which checks them).
"""

from turn.credentials import credential_for, make_credentials, parse_username

__all__ = ["credential_for", "make_credentials", "parse_username"]
