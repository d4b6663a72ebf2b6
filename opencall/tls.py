"""The server's TLS: one certificate per process, served by HTTPS and TURN over TLS, reloaded in place.

``tls: auto`` keeps a server certificate from the local CA in data_dir (:mod:`opencall.localca`) current
for this host's names and addresses; ``tls: {cert, key}`` serves the operator's files. Either way the
certificate is checked at startup, daily, and on SIGHUP, and loaded again into the *same* context object:
new TLS connections get the new certificate, open ones keep theirs, nothing restarts.

HTTPS serves it from :func:`server_ssl_context`; the relay, which runs on a thread of its own, from a context of
its own (:func:`relay_ssl_context`), loaded on the relay's thread: OpenSSL does not allow one thread to load a
certificate into a context while another makes connections from it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import ssl
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from opencall.config import Config, TlsConfig
from opencall.localca import LocalCA, common_name, fingerprint, host_names
from opencall.mdns import local_name

log = logging.getLogger("opencall.tls")

CHECK_EVERY = 24 * 3600.0  # seconds between the certificate checks of a running server


def extra_names(config: Config) -> list[str]:
    """Names and addresses from the config that the certificate must cover besides the host's own."""
    names = []
    if config.turn.advertise != "auto":
        names.append(config.turn.advertise)
    for host in (config.server.host, config.turn.listen, config.turn.relay_ip):
        if host and not ipaddress.ip_address(host).is_unspecified:
            names.append(host)
    if config.mdns.enabled:  # the name announced on the LAN (host_names has <hostname>.local already)
        names.append(f"{local_name(config.mdns)}.local")
    if config.server.public_url:
        public_host = urlsplit(config.server.public_url).hostname
        if public_host:
            names.append(public_host)
    return names


def _new_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class CertificateKeeper:
    """The server certificate, its files and the live SSLContext that serves it."""

    def __init__(self, config: Config) -> None:
        tls: TlsConfig = config.server.tls
        self.local_ca: LocalCA | None = None
        if tls.mode == "auto":
            self.local_ca = LocalCA.in_data_dir(config.data_dir)
            self.cert_path, self.key_path = self.local_ca.cert_path, self.local_ca.key_path
        else:
            assert tls.cert is not None and tls.key is not None
            self.cert_path, self.key_path = tls.cert, tls.key
        self._extra_names = extra_names(config)
        self.context = _new_context()
        self._others: list[tuple[ssl.SSLContext, Callable[[Callable[[], None]], None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.refresh()

    @property
    def ca_cert_path(self) -> Path | None:
        """The local CA's certificate for ``tls: auto``; None for the operator's own certificate."""
        return self.local_ca.ca_cert_path if self.local_ca else None

    def refresh(self) -> str | None:
        """Re-issue the ``auto`` certificate when needed, then load the files into the context.

        Returns why the certificate was re-issued, or None. Raises OSError/ssl.SSLError/ValueError when the
        files cannot be used; the context then still serves the certificate it had.
        """
        reason = None
        if self.local_ca is not None:
            names = host_names(self._extra_names)
            self._ensure_ca(self.local_ca, names.dns)
            reason = self.local_ca.ensure_server_certificate(names)
        # Load into a scratch context first: a failed load_cert_chain can leave a context half-changed.
        _new_context().load_cert_chain(self.cert_path, self.key_path)
        self.context.load_cert_chain(self.cert_path, self.key_path)
        for context, run in self._others:
            run(partial(context.load_cert_chain, self.cert_path, self.key_path))
        if reason:
            log.info("server certificate re-issued: %s", reason)
        return reason

    def another_context(self) -> ssl.SSLContext:
        """A context of its own serving the same certificate, for a listener on another thread; reloaded with
        the others, by whatever :meth:`load_on` says (at first, at once on the calling thread)."""
        context = _new_context()
        context.load_cert_chain(self.cert_path, self.key_path)
        self._others.append((context, _now))
        return context

    def load_on(self, context: ssl.SSLContext, run: Callable[[Callable[[], None]], None]) -> None:
        """From now on, reload ``context`` (from :meth:`another_context`) by passing the load to ``run``, e.g. a
        loop's ``call_soon_threadsafe``, so that it happens on the thread that serves from it."""
        self._others = [(other, run if other is context else runner) for other, runner in self._others]

    @staticmethod
    def _ensure_ca(local_ca: LocalCA, dns: tuple[str, ...]) -> None:
        """Make or replace the local CA when needed, and say so with its fingerprint (phones must trust it)."""
        replacing = local_ca.ca_cert_path.exists()
        made = local_ca.ensure_ca(dns)
        if made is None:
            return
        ca_cert, _ = local_ca.load_ca()
        log.log(logging.WARNING if replacing else logging.INFO,
                "local CA %s: %s; new CA %s, SHA-256 fingerprint %s: phones must trust it once (page /trust)",
                "replaced" if replacing else "made", made, common_name(ca_cert), fingerprint(ca_cert))

    def reload(self) -> None:
        """SIGHUP and the daily check: refresh, logging (never raising) when the new files are unusable."""
        try:
            self.refresh()
            log.info("certificate loaded from %s", self.cert_path)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("certificate reload failed, still serving the previous one: %s", exc)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reload on SIGHUP and every :data:`CHECK_EVERY` seconds, on ``loop``."""
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        def daily() -> None:
            self.reload()
            self._schedule(loop)

        self._timer = loop.call_later(CHECK_EVERY, daily)

    def unwatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop the daily check and the SIGHUP handler."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop.remove_signal_handler(signal.SIGHUP)


_keepers: dict[tuple[TlsConfig, Path], CertificateKeeper] = {}


def certificate_keeper(config: Config) -> CertificateKeeper | None:
    """This process's keeper for ``config`` (made on first call); None when TLS is off."""
    if config.server.tls.mode == "off":
        return None
    key = (config.server.tls, config.data_dir)
    if key not in _keepers:
        _keepers[key] = CertificateKeeper(config)
    return _keepers[key]


def server_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server-side SSLContext for HTTPS; None when TLS is off."""
    keeper = certificate_keeper(config)
    return keeper.context if keeper else None


def relay_ssl_context(config: Config) -> ssl.SSLContext | None:
    """A server-side SSLContext for TURN over TLS, serving the same certificate as HTTPS; None when TLS is off.

    A certificate renewed on SIGHUP or by the daily check reaches TURN clients too: the keeper reloads this
    context as well, on the relay's thread once :meth:`CertificateKeeper.load_on` says how.
    """
    keeper = certificate_keeper(config)
    return keeper.another_context() if keeper else None


def _now(load: Callable[[], None]) -> None:
    load()
