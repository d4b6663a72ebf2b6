"""Admission of stream connections: a cap on all of them and a cap per client IP address.

Pure bookkeeping, no I/O: a listener asks :meth:`ConnectionGate.admit` when it accepts a socket and calls
:meth:`ConnectionGate.release` exactly once when that socket is closed. Used by the relay's TCP and TLS
listeners and by OpenCall's HTTPS server.
"""

from __future__ import annotations

GLOBAL_LIMIT = "global_limit"  # the refusal reasons, as /metrics labels them
PER_IP_LIMIT = "per_ip_limit"


class ConnectionGate:
    """Counts open connections, in all and per IP address, against ``limit`` and ``per_ip``.

    A *privileged* client (the operator's address) may go ``reserve`` connections beyond ``limit``, so a flood
    from elsewhere that fills the cap does not lock the operator out; the per-IP cap applies to everyone.
    """

    __slots__ = ("by_ip", "limit", "open", "per_ip", "refused", "reserve")

    def __init__(self, limit: int, per_ip: int, reserve: int = 0) -> None:
        self.limit = limit
        self.per_ip = per_ip
        self.reserve = reserve
        self.open = 0
        self.by_ip: dict[str, int] = {}
        self.refused = {GLOBAL_LIMIT: 0, PER_IP_LIMIT: 0}

    def admit(self, ip: str, privileged: bool = False) -> str | None:
        """Count a new connection from ``ip`` and return None, or return why it is refused (not counted)."""
        held = self.by_ip.get(ip, 0)
        if held >= self.per_ip:
            reason = PER_IP_LIMIT
        elif self.open >= self.limit + (self.reserve if privileged else 0):
            reason = GLOBAL_LIMIT
        else:
            self.by_ip[ip] = held + 1
            self.open += 1
            return None
        self.refused[reason] += 1
        return reason

    def release(self, ip: str) -> None:
        """Forget one admitted connection from ``ip``."""
        held = self.by_ip.get(ip, 0)
        if held <= 1:
            self.by_ip.pop(ip, None)
        else:
            self.by_ip[ip] = held - 1
        self.open -= 1
