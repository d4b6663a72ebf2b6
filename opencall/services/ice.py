"""The ICE servers for ``/api/ice-config``: this box's own STUN/TURN with fresh time-limited credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turn.credentials import make_credentials


@dataclass(frozen=True)
class IcePlan:
    """What the app advertises: where the relay is reached and what it offers."""

    enabled: bool
    hosts: tuple[str, ...]  # where phones reach the relay, first preferred; already bracketed for IPv6
    port: int
    tls_port: int | None  # None when TURN over TLS is off
    secret: str
    credential_ttl: int
    extra_servers: tuple[Mapping[str, Any], ...]


def ice_servers(plan: IcePlan, user_id: str) -> list[dict[str, Any]]:
    """For each host of the plan, in order: stun:, turn: (UDP), turn:?transport=tcp and turns: (when TLS is
    on); one fresh credential pair shared by all; then the extra servers."""
    servers: list[dict[str, Any]] = []
    if plan.enabled:
        creds = make_credentials(plan.secret, user_id, plan.credential_ttl)
        auth = {"username": creds.username, "credential": creds.credential}
        for host in plan.hosts:
            base = f"{host}:{plan.port}"
            servers += [
                {"urls": f"stun:{base}"},
                {"urls": f"turn:{base}", **auth},
                {"urls": f"turn:{base}?transport=tcp", **auth},
            ]
            if plan.tls_port is not None:
                servers.append({"urls": f"turns:{host}:{plan.tls_port}?transport=tcp", **auth})
    servers.extend(dict(server) for server in plan.extra_servers)
    return servers
