"""The individual checks of ``opencall doctor``; each returns :class:`Result` lines with a fix for failures."""

from __future__ import annotations

import datetime
import errno
import ipaddress
import json
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from opencall.config import Config
from opencall.localca import (
    LocalCA,
    Permits,
    ca_replacement_reason,
    certificate_names,
    common_name,
    fingerprint,
    host_names,
    renewal_reason,
)
from opencall.relay.settings import LOOPBACK_FIX, advertised_hosts, loopback_problem
from opencall.services.secrets_store import TURN_SECRET_FILE
from opencall.tls import extra_names
from turn.listen import NO_IPV6_ERRORS, bind_addresses, is_wildcard

PROBE_TIMEOUT = 3.0
EXPIRY_WARNING = datetime.timedelta(days=14)


@dataclass(frozen=True)
class Result:
    """One line of the report: ``ok`` with what was found, or a failure with its fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def local_host(bind: str) -> str:
    """The address to reach a server bound to ``bind`` from this host."""
    address = ipaddress.ip_address(bind)
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return bind


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def running_health(config: Config) -> dict[str, object] | None:
    """The /healthz answer of an OpenCall already serving on the configured port, or None."""
    scheme = "https" if config.tls_enabled else "http"
    url = f"{scheme}://{_url_host(local_host(config.server.host))}:{config.server.port}/healthz"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # identifying our own server on this host, not trusting it
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=context) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 still says "OpenCall is here, something is down"
        try:
            body = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) and "database" in body and "relay" in body else None


def port_in_use(host: str, port: int, kind: int) -> str | None:
    """None when ``host:port`` can be bound now, else why not (``in use`` or ``permission denied``).

    A wildcard ``host`` is probed on 0.0.0.0 and on :: (IPv6-only), as ``opencall serve`` binds it
    (turn.listen.bind_addresses); :: is skipped on a host without IPv6.
    """
    for address in bind_addresses(host):
        ipv6 = ":" in address
        try:
            probe = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, kind)
        except OSError as exc:
            if ipv6 and exc.errno in NO_IPV6_ERRORS:
                continue  # no IPv6 on this host: serve listens on IPv4 only
            raise
        with probe:
            if ipv6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
            try:
                probe.bind((address, port))
            except OSError as exc:
                if ipv6 and is_wildcard(host) and exc.errno in NO_IPV6_ERRORS:
                    continue
                return "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else "in use"
    return None


def wanted_ports(config: Config) -> list[tuple[str, str, int, int, str]]:
    """(label, host, port, socket kind, config key) of every port the server listens on."""
    ports: list[tuple[str, str, int, int, str]] = [
        ("web", config.server.host, config.server.port, socket.SOCK_STREAM, "server.port")]
    turn = config.turn
    if turn.enabled:
        ports += [("turn", turn.listen, turn.port, socket.SOCK_DGRAM, "turn.port"),
                  ("turn", turn.listen, turn.port, socket.SOCK_STREAM, "turn.port")]
        if turn.tls_port is not None and config.tls_enabled:
            ports.append(("turns", turn.listen, turn.tls_port, socket.SOCK_STREAM, "turn.tls_port"))
    return ports


def check_ports(config: Config, running: bool) -> list[Result]:
    """Each port is free, or held by the OpenCall that answers on server.port."""
    results = []
    for label, host, port, kind, key in wanted_ports(config):
        proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
        name = f"port {port}/{proto} ({label})"
        problem = port_in_use(host, port, kind)
        if problem is None:
            results.append(Result(name, True, f"free on {host}"))
        elif running:
            results.append(Result(name, True, "held by the running OpenCall"))
        elif problem == "permission denied":
            results.append(Result(name, False, f"binding {host}:{port} needs privileges",
                                  "use a port >= 1024, or grant CAP_NET_BIND_SERVICE (see docs/operations.md)"))
        else:
            results.append(Result(name, False, f"{host}:{port} is used by another program",
                                  f"stop it (find it with: ss -lnp{proto[0]} 'sport = :{port}') or change {key}"))
    return results


def served_certificate(config: Config) -> x509.Certificate | None:
    """The certificate the running server presents, or None when it cannot be fetched."""
    host = local_host(config.server.host)
    try:
        pem = ssl.get_server_certificate((host, config.server.port), timeout=PROBE_TIMEOUT)
    except (OSError, ValueError):
        return None
    return x509.load_pem_x509_certificate(pem.encode())


def _expiry(cert: x509.Certificate) -> tuple[bool, str]:
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > datetime.timedelta(0), f"valid until {cert.not_valid_after_utc:%Y-%m-%d} ({left.days} days left)"


def _describe(cert: x509.Certificate) -> str:
    names = certificate_names(cert)
    return ", ".join([*names.dns, *names.ips])


def check_local_ca(ca: x509.Certificate, dns: tuple[str, ...]) -> Result:
    """The local CA's SHA-256 fingerprint (to compare with the phones'), and that it vouches only for the box."""
    permits = Permits.of_ca(ca)
    reason = ca_replacement_reason(ca, dns)
    detail = f"{common_name(ca)}, SHA-256 fingerprint {fingerprint(ca)}"
    if reason is not None or permits is None:
        return Result("local CA", False, f"{detail}; must be replaced: {reason}",
                      "restart the service: it makes a new CA, which every phone then trusts once (page /trust)")
    return Result("local CA", True, f"{detail}; vouches only for {', '.join(permits.domains)} and private, "
                                    "loopback and link-local addresses")


def check_certificate(config: Config, running: bool) -> list[Result]:
    """Validity and SANs of the certificate files; and that the running server serves the current one."""
    tls = config.server.tls
    if tls.mode == "off":
        return [Result("certificate", True, "server.tls is off (browsers allow the microphone only on https "
                                            "or localhost)")]
    if tls.mode == "auto":
        local = LocalCA.in_data_dir(config.data_dir)
        cert_path = local.cert_path
        cert = local.read_server_certificate()
        ca = local.read_ca_certificate()
        if ca is None:
            return [Result("certificate", False, f"no local CA in {local.folder}",
                           "start the service once: it makes the CA and the certificate")]
        if cert is None:
            return [Result("certificate", False, f"no server certificate in {local.folder}",
                           "start the service once: it makes the certificate")]
        names = host_names(extra_names(config))
        reason = renewal_reason(cert, ca, names.within(Permits.of_ca(ca)))
        fix = "restart the service or run: systemctl reload opencall (it re-issues the certificate)"
        ca_line = [check_local_ca(ca, names.dns)]
    else:
        assert tls.cert is not None and tls.key is not None
        cert_path, reason, ca_line = tls.cert, None, []
        fix = "renew the certificate files, then run: systemctl reload opencall"
        try:
            cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
        except (OSError, ValueError, ssl.SSLError) as exc:
            return [Result("certificate", False, f"cannot use {tls.cert} / {tls.key}: {exc}",
                           "fix server.tls.cert and server.tls.key (PEM certificate chain and its key)")]
    valid, until = _expiry(cert)
    ok = valid and reason is None
    detail = f"{cert_path}: {until}; names: {_describe(cert)}" + (f"; must be re-issued: {reason}" if reason else "")
    results = [Result("certificate", ok, detail, "" if ok else fix), *ca_line]
    if running:
        served = served_certificate(config)
        same = served is not None and served.fingerprint(hashes.SHA256()) == cert.fingerprint(hashes.SHA256())
        results.append(Result("served certificate", same,
                              "the running server serves this certificate" if same else
                              "the running server serves a different certificate than the file",
                              "" if same else "run: systemctl reload opencall (reloads the certificate)"))
    return results


def check_advertise(config: Config, relay_state: str | None, advertised: tuple[str, ...] | None = None) -> Result:
    """Phones can reach the relay: it is not advertised on loopback only while serving the LAN.

    ``advertised`` is what ``turn.advertise`` resolves to (default: resolved now, on this host);
    ``relay_state`` is the running server's /healthz relay field, when it runs.
    """
    if not config.turn.enabled:
        return Result("relay address", True, "turn.enabled is false: nothing advertised")
    hosts = advertised_hosts(config) if advertised is None else advertised
    problem = loopback_problem(config, hosts)
    if problem is not None:
        return Result("relay address", False, problem, LOOPBACK_FIX)
    if relay_state == "loopback only":
        return Result("relay address", False,
                      f"the running server advertises the relay on loopback only, but turn.advertise: "
                      f"{config.turn.advertise} now gives {', '.join(hosts)} (the LAN came up after it started)",
                      "restart the service: systemctl restart opencall")
    return Result("relay address", True, f"advertised to phones as {', '.join(hosts)}")


def turn_secret(config: Config) -> str | None:
    """turn.secret, else the secret generated into data_dir (never created here)."""
    if config.turn.secret:
        return config.turn.secret
    try:
        return (config.data_dir / TURN_SECRET_FILE).read_text().strip() or None
    except OSError:
        return None

