"""File descriptors: the process limit raised at start, and the relay's caps sized so HTTPS always has its share.

Every TCP/TLS connection, every relay socket and every listener holds a descriptor. If a flood of TURN
connections could take the last ones, HTTPS could not accept (EMFILE), and asyncio stops accepting on a
listener for a second after each such failure: 8443 would stop answering. So the relay gets only what is left
of RLIMIT_NOFILE after HTTPS (``server.max_connections`` + ``server.operator_connections``) and
:data:`RESERVED` for the rest of the process; caps that do not fit are lowered, with one WARNING.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from opencall.config import Config, ConfigError

log = logging.getLogger("opencall")

# Database, log files, the event loop, mDNS, the listeners, and HTTPS connections still in their TLS handshake
# (counted by the HTTPS cap only once the handshake is done, within server.tls_handshake_timeout).
RESERVED = 256
RELAY_MINIMUM = 8  # the least allocations and connections the relay is worth running with


def raise_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (no privilege needed) and return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
    return current_limit()


def current_limit() -> int:
    """The soft RLIMIT_NOFILE of this process."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def relay_descriptors(max_allocations: int, max_connections: int) -> int:
    """Descriptors the relay may hold: per allocation a relay socket, an EVEN-PORT reservation (RFC 8656 §7.2)
    and a connected socket for a peer (turn.relay.PeerLink: at most ``max_allocations`` in all), and its TCP/TLS
    connections."""
    return 3 * max_allocations + max_connections


@dataclass(frozen=True)
class RelayShare:
    """The relay's caps that fit in the descriptors left to it."""

    max_allocations: int
    max_connections: int
    max_connections_per_ip: int


def relay_share(config: Config, nofile: int) -> RelayShare:
    """``turn.max_allocations``, ``turn.max_connections`` and ``turn.max_connections_per_ip``, lowered in
    proportion (one WARNING) when the relay would need more than ``nofile`` leaves beside HTTPS.

    Raises ConfigError naming the keys when not even :data:`RELAY_MINIMUM` of each fits."""
    turn, server = config.turn, config.server
    https = server.max_connections + server.operator_connections
    available = nofile - RESERVED - https
    wanted = RelayShare(turn.max_allocations, turn.max_connections, turn.max_connections_per_ip)
    needed = relay_descriptors(turn.max_allocations, turn.max_connections)
    if needed <= available:
        return wanted
    if available < relay_descriptors(RELAY_MINIMUM, RELAY_MINIMUM):
        raise ConfigError(
            f"server.max_connections: {server.max_connections} HTTPS connections (+{server.operator_connections} "
            f"for the operator) and {RESERVED} reserved descriptors leave {max(available, 0)} of the open files "
            f"limit ({nofile}) to the relay, too few to run it; lower server.max_connections, or raise the "
            f"limit (LimitNOFILE= in the systemd unit, ulimit -n)")
    scale = available / needed
    allocations = max(RELAY_MINIMUM, int(turn.max_allocations * scale))
    connections = max(RELAY_MINIMUM, available - relay_descriptors(allocations, 0))
    connections = min(connections, turn.max_connections)
    share = RelayShare(allocations, connections, min(turn.max_connections_per_ip, connections))
    log.warning(
        "open files limit %d: the relay gets %d descriptors beside HTTPS, so turn.max_allocations is lowered "
        "from %d to %d and turn.max_connections from %d to %d; raise the limit (LimitNOFILE=, ulimit -n) or "
        "lower them in the config", nofile, available, turn.max_allocations, share.max_allocations,
        turn.max_connections, share.max_connections)
    return share
