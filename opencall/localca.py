"""The local certificate authority of ``tls: auto``: a CA made once in data_dir and the server certificate it signs.

Phones trust the CA once (it is served at ``/ca.crt``); the server certificate can then be re-issued whenever
this host's names or addresses change, or it nears expiry, without anyone trusting anything again.
The CA is name-constrained: it can vouch only for the box's own names, names no public site can have
(``.local``, ``localhost``, ``home.arpa``, ``internal``) and private, loopback and link-local addresses. A CA of
an older version (no constraints) or one that does not cover a new name of the box is replaced: its certificate
is kept as ``ca-legacy.crt`` for the "Trust this box" page, its key destroyed.
Everything here is pure X.509 work with ``cryptography`` plus file I/O in ``<data_dir>/tls``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import ifaddr
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_DIR = "tls"
CA_CERT, CA_KEY, LEGACY_CA_CERT = "ca.crt", "ca.key", "ca-legacy.crt"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=397)  # the longest lifetime browsers accept for a server certificate
RENEW_BEFORE = datetime.timedelta(days=30)  # re-issue when less than this is left
TRANSITION = datetime.timedelta(days=90)  # how long the trust page tells of a replaced CA
# DNS names every CA may vouch for besides the box's own: no public site can hold them. RFC 6762 (mDNS),
# RFC 6761 §6.3 (localhost), RFC 8375 (home networks), and ICANN's private-use TLD (2024).
STANDING_DOMAINS = ("home.arpa", "internal", "local", "localhost")
# Addresses it may vouch for: private (RFC 1918), shared (RFC 6598: carrier NAT, Tailscale), loopback,
# IPv4 link-local (RFC 3927), IPv6 loopback, link-local and unique local (RFC 4193). No public address.
PERMITTED_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "::1/128", "fe80::/10", "fc00::/7"))
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

CertKey = ec.EllipticCurvePrivateKey
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Names:
    """The subject alternative names of a server certificate, canonical and sorted."""

    dns: tuple[str, ...]
    ips: tuple[str, ...]

    @classmethod
    def of(cls, dns: Iterable[str], ips: Iterable[str]) -> Names:
        return cls(tuple(sorted({d.lower().rstrip(".") for d in dns})),
                   tuple(sorted({str(ipaddress.ip_address(i)) for i in ips})))

    def general_names(self) -> list[x509.GeneralName]:
        return [x509.DNSName(d) for d in self.dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ips]

    def within(self, permits: Permits | None) -> Names:
        """The names a CA with ``permits`` may vouch for (all of them for an unconstrained CA)."""
        if permits is None:
            return self
        return Names(tuple(d for d in self.dns if permits.allows_dns(d)),
                     tuple(i for i in self.ips if permits.allows_ip(i)))


@dataclass(frozen=True)
class Permits:
    """The permitted subtrees of a name-constrained CA: DNS domains and address ranges.

    RFC 5280 §4.2.1.10: once a CA lists permitted subtrees of a name type, every name of that type outside
    them is refused in the certificates it signs. IPv4 and IPv6 ranges are one type (iPAddress), so a leaf's
    IPv6 address outside the IPv6 ranges is refused too; both families are listed.
    """

    domains: tuple[str, ...]
    networks: tuple[Network, ...]

    @classmethod
    def for_box(cls, dns: Iterable[str]) -> Permits:
        """What a new CA permits: :data:`STANDING_DOMAINS`, each of ``dns`` not already under a permitted
        domain, and :data:`PERMITTED_NETWORKS`."""
        domains = set(STANDING_DOMAINS)
        for name in sorted({d.lower().rstrip(".") for d in dns}, key=lambda d: d.count(".")):
            if not _under(name, domains):
                domains.add(name)
        return cls(tuple(sorted(domains)), PERMITTED_NETWORKS)

    @classmethod
    def of_ca(cls, ca_cert: x509.Certificate) -> Permits | None:
        """The permitted subtrees of ``ca_cert``; None when it has no name constraints (it vouches for any site)."""
        try:
            constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return None
        subtrees = constraints.permitted_subtrees or []
        return cls(tuple(n.value.lower() for n in subtrees if isinstance(n, x509.DNSName)),
                   tuple(n.value for n in subtrees if isinstance(n, x509.IPAddress)
                         and isinstance(n.value, ipaddress.IPv4Network | ipaddress.IPv6Network)))

    def allows_dns(self, name: str) -> bool:
        """Whether ``name`` is one of the domains or under one (RFC 5280: labels added on the left)."""
        return _under(name.lower().rstrip("."), self.domains)

    def allows_ip(self, ip: str) -> bool:
        """Whether the address ``ip`` is in one of the ranges."""
        address = ipaddress.ip_address(ip)
        return any(address.version == net.version and address in net for net in self.networks)

    def general_names(self) -> list[x509.GeneralName]:
        return [x509.DNSName(d) for d in self.domains] + [x509.IPAddress(net) for net in self.networks]

    def describe(self) -> list[str]:
        """The domains and ranges as text, e.g. ``["local", …, "10.0.0.0/8", …]``."""
        return [*self.domains, *(str(net) for net in self.networks)]


def _under(name: str, domains: Iterable[str]) -> bool:
    return any(name == domain or name.endswith(f".{domain}") for domain in domains)


def common_name(cert: x509.Certificate) -> str:
    """The certificate's CN: the name phones list it by."""
    return ", ".join(str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint as phones and ``openssl x509 -fingerprint -sha256`` show it: ``AB:CD:…``."""
    return ":".join(f"{byte:02X}" for byte in cert.fingerprint(hashes.SHA256()))


def is_dns_name(name: str) -> bool:
    """Whether ``name`` can go into a DNSName SAN (ASCII labels, no IP literal)."""
    labels = name.lower().rstrip(".").split(".")
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        return all(_DNS_LABEL.match(label) for label in labels)


def interface_addresses() -> list[str]:
    """Every address of this host's interfaces, loopback included; IPv6 link-local ones left out.

    Link-local IPv6 addresses need a zone id that browsers do not accept in a URL, and they come and go
    with virtual interfaces, which would re-issue the certificate for nothing.
    """
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if address.version == 6 and address.is_link_local:
                continue
            found.append(str(address))
    return found


def host_names(extra: Iterable[str] = ()) -> Names:
    """The names this host answers to: hostname, ``<hostname>.local``, localhost, every interface address
    and ``extra`` (IP literals or DNS names, e.g. turn.advertise)."""
    host = socket.gethostname().lower()
    short = host.split(".", 1)[0]
    dns = {host, short, f"{short}.local", "localhost"}
    ips = {"127.0.0.1", "::1", *interface_addresses()}
    for name in extra:
        try:
            ips.add(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.add(name.lower())
    return Names.of((d for d in dns if is_dns_name(d)), ips)


def certificate_names(cert: x509.Certificate) -> Names:
    """The DNS and IP SANs of ``cert``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return Names((), ())
    return Names.of(san.get_values_for_type(x509.DNSName),
                    (str(ip) for ip in san.get_values_for_type(x509.IPAddress)))


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file only its owner can read (0600), replacing ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate (world-readable is fine: certificates are public), replacing ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    temp.chmod(0o644)
    os.replace(temp, path)


def _pem_key(key: CertKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(common_name: str, permits: Permits) -> tuple[x509.Certificate, CertKey]:
    """A new CA certificate and key (ECDSA P-256), valid for ten years, that may sign only end certificates,
    and only for the names and addresses of ``permits`` (a critical NameConstraints extension)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenCall"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.NameConstraints(permitted_subtrees=permits.general_names(), excluded_subtrees=None),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def ca_replacement_reason(ca_cert: x509.Certificate, dns: Iterable[str]) -> str | None:
    """Why the CA must be replaced (no name constraints, a name of the box outside them), or None."""
    permits = Permits.of_ca(ca_cert)
    if permits is None:
        return "the local CA had no name constraints, so it could vouch for any site"
    outside = sorted({d for d in dns if not permits.allows_dns(d)})
    return f"the local CA cannot vouch for {', '.join(outside)}" if outside else None


def _common_name(names: Names) -> str:
    """The certificate's CN: the host name (browsers read the SANs; people read the CN)."""
    host = socket.gethostname().lower()
    return host if host in names.dns else next((d for d in names.dns if d != "localhost"), "localhost")


def issue_server_certificate(ca_cert: x509.Certificate, ca_key: CertKey,
                             names: Names) -> tuple[x509.Certificate, CertKey]:
    """A server certificate for ``names`` signed by the CA, valid for :data:`SERVER_VALIDITY`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenCall"),
                         x509.NameAttribute(NameOID.COMMON_NAME, _common_name(names))])
    now = _now()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names.general_names()), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``cert`` was issued and signed by ``ca_cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):  # bad signature, another issuer, another key type
        return False
    return True


def renewal_reason(cert: x509.Certificate, ca_cert: x509.Certificate | None, names: Names,
                   now: datetime.datetime | None = None) -> str | None:
    """Why ``cert`` must be re-issued (not from our CA, expiring, names changed), or None when it is fine."""
    now = now or _now()
    if ca_cert is not None and not signed_by(cert, ca_cert):
        return "it was not issued by the local CA"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"it expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    if certificate_names(cert) != names:
        return "this host's names or addresses changed"
    return None


@dataclass(frozen=True)
class LocalCA:
    """The files of the local CA and its server certificate in ``<data_dir>/tls``."""

    folder: Path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LocalCA:
        return cls(data_dir / TLS_DIR)

    @property
    def ca_cert_path(self) -> Path:
        return self.folder / CA_CERT

    @property
    def ca_key_path(self) -> Path:
        return self.folder / CA_KEY

    @property
    def cert_path(self) -> Path:
        return self.folder / SERVER_CERT

    @property
    def key_path(self) -> Path:
        return self.folder / SERVER_KEY

    @property
    def legacy_ca_cert_path(self) -> Path:
        return self.folder / LEGACY_CA_CERT

    def load_ca(self) -> tuple[x509.Certificate, CertKey]:
        """The CA's certificate and key; OSError or ValueError when missing or unreadable."""
        cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.ca_key_path} is not an EC key")
        return cert, key

    def ensure_ca(self, dns: Iterable[str] = ()) -> str | None:
        """Make the CA on first use, or replace one that cannot vouch for the box's DNS names ``dns`` or has no
        name constraints; returns why it was (re)made, or None.

        A replaced CA's certificate is kept as ``ca-legacy.crt`` (the trust page names it, so people can
        remove it from their phones) and its key is overwritten by the new one: nothing can sign with it again.
        """
        names = [d for d in dns if is_dns_name(d)]
        if self.ca_cert_path.exists() and self.ca_key_path.exists():
            old = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            reason = ca_replacement_reason(old, names)
            if reason is None:
                return None
            write_public(self.legacy_ca_cert_path, old.public_bytes(serialization.Encoding.PEM))
        else:
            reason = "there was no local CA"
        cert, key = make_ca(f"OpenCall local CA ({socket.gethostname()}) {_now():%Y-%m-%d}", Permits.for_box(names))
        write_private(self.ca_key_path, _pem_key(key))
        write_public(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return reason

    def read_ca_certificate(self) -> x509.Certificate | None:
        """The CA's certificate, or None when missing or unreadable."""
        try:
            return x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
        except (OSError, ValueError):
            return None

    def legacy_ca(self, now: datetime.datetime | None = None) -> x509.Certificate | None:
        """The CA this one replaced, during the :data:`TRANSITION` after the replacement; else None."""
        current = self.read_ca_certificate()
        try:
            legacy = x509.load_pem_x509_certificate(self.legacy_ca_cert_path.read_bytes())
        except (OSError, ValueError):
            return None
        if current is None or (now or _now()) >= current.not_valid_before_utc + TRANSITION:
            return None
        return legacy

    def read_server_certificate(self) -> x509.Certificate | None:
        """The current server certificate, or None when missing or unreadable."""
        try:
            return x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError):
            return None

    def ensure_server_certificate(self, names: Names) -> str | None:
        """Make sure the CA can vouch for ``names`` and the server certificate is current for those it may
        vouch for (public addresses are left out); returns why it was (re-)issued, or None."""
        ca_reason = self.ensure_ca(names.dns)
        ca_cert, ca_key = self.load_ca()
        names = names.within(Permits.of_ca(ca_cert))
        cert = self.read_server_certificate()
        if cert is None or not self.key_path.exists():
            reason: str | None = "there was none"
        elif ca_reason is not None:
            reason = ca_reason
        else:
            reason = renewal_reason(cert, ca_cert, names)
        if reason is None:
            return None
        cert, key = issue_server_certificate(ca_cert, ca_key, names)
        write_private(self.key_path, _pem_key(key))
        write_public(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return reason
