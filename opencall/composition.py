"""The services the HTTP handlers use, built once from the config: :class:`AppServices`. No framework here; the
composition root (app.py) builds this, the signaling and the relay, and wires them into Sanic."""

from __future__ import annotations

from dataclasses import dataclass

from opencall.config import Config, RateLimits
from opencall.lan import url_host
from opencall.services.accounts import Accounts
from opencall.services.anonymous import AnonymousIds
from opencall.services.blocks import Blocks
from opencall.services.call_records import CallRecorder
from opencall.services.client_log import ClientLog
from opencall.services.ice import IcePlan
from opencall.services.invites import Invites
from opencall.services.presence import Presence
from opencall.services.ratelimit import RateLimiter
from opencall.services.secrets_store import api_key_cipher, turn_secret
from opencall.signaling.registry import Registry


@dataclass(frozen=True)
class Limits:
    """One limiter per rate limit of the config."""

    login_per_ip: RateLimiter
    login_failures_per_user: RateLimiter
    register_per_ip: RateLimiter
    contact_per_ip: RateLimiter
    client_log_per_ip: RateLimiter

    @classmethod
    def from_config(cls, limits: RateLimits) -> Limits:
        return cls(
            login_per_ip=RateLimiter(limits.login_per_ip),
            login_failures_per_user=RateLimiter(limits.login_failures_per_user),
            register_per_ip=RateLimiter(limits.register_per_ip),
            contact_per_ip=RateLimiter(limits.contact_per_ip),
            client_log_per_ip=RateLimiter(limits.client_log_per_ip),
        )

    def named(self) -> list[tuple[str, RateLimiter]]:
        """Each limiter by its config key, for /metrics' refusal counts."""
        return [("login_per_ip", self.login_per_ip), ("login_failures_per_user", self.login_failures_per_user),
                ("register_per_ip", self.register_per_ip), ("contact_per_ip", self.contact_per_ip),
                ("client_log_per_ip", self.client_log_per_ip)]


@dataclass(frozen=True)
class AppServices:
    """Everything the handlers use, built once per app."""

    config: Config
    accounts: Accounts
    invites: Invites
    presence: Presence
    ice_plan: IcePlan
    limits: Limits
    public_url: str | None
    call_records: CallRecorder
    anonymous: AnonymousIds
    client_log: ClientLog
    blocks: Blocks


def build_services(config: Config, registry: Registry, advertised: tuple[str, ...]) -> AppServices:
    """Make the services from the config; key material is created in data_dir on first start."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    turn = config.turn
    ice_plan = IcePlan(
        enabled=turn.enabled,
        hosts=tuple(url_host(host) for host in advertised),
        port=turn.port,
        tls_port=turn.tls_port if config.tls_enabled else None,
        secret=turn_secret(config.data_dir, turn.secret),
        credential_ttl=turn.credential_ttl,
        extra_servers=config.ice.extra_servers,
    )
    return AppServices(
        config=config,
        accounts=Accounts(api_key_cipher(config.data_dir)),
        invites=Invites(registry, config.invite_ttl),
        presence=registry,
        ice_plan=ice_plan,
        limits=Limits.from_config(config.rate_limits),
        public_url=config.server.public_url,
        call_records=CallRecorder(),
        anonymous=AnonymousIds.from_secret(ice_plan.secret),
        client_log=ClientLog(config.client_log.bytes_per_minute),
        blocks=Blocks(registry.identity_of),
    )
