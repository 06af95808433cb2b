"""Where the portal may send a holder's signed requests (no server-side request forgery).

A holder's address is refused when it is not http(s), carries a user name or password, a query
or a fragment, or names a loopback, private, link-local, multicast or reserved address — unless
it is in one of `HOLDER_ALLOWED_NETWORKS` (say, the school network of its gate controllers) or
`HOLDER_ALLOW_PRIVATE_ADDRESSES` is on (the embedded default and the tests, whose reference
holder listens on 127.0.0.1). The same rule is checked when a holder is saved, when "test
connection" runs, and at every connection a holder client opens: the host name is resolved
once, every address it gives is checked, and the socket connects to a checked address, so a
name that resolves differently a moment later (DNS rebinding) reaches nothing it should not.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.parse
import urllib.request

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .holders.client import HolderClient

URL_SCHEME = _("A holder's address must start with http:// or https://.")
URL_CREDENTIALS = _("A holder's address must not contain a user name or password.")
URL_QUERY = _("A holder's address must not contain a query string or a fragment.")
URL_HOST = _("A holder's address must name a host (and a valid port, if any).")
URL_PRIVATE = _(
    "This address is on a loopback, private or link-local network. A holder must be reached "
    "on a public address (HOLDER_ALLOW_PRIVATE_ADDRESSES allows private ones)."
)


class AddressRefused(OSError):
    """A holder connection to an address the portal must not reach."""


def address_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if settings.HOLDER_ALLOW_PRIVATE_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # A school's own network where its gate controllers live, named by the operator.
    if any(ip in ipaddress.ip_network(n, strict=False) for n in settings.HOLDER_ALLOWED_NETWORKS):
        return False
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def holder_url_problem(url: str, *, resolve: bool = True) -> str | None:
    """Why the portal must not send requests to `url`, or None. With `resolve`, a host name
    is looked up and refused if any of its addresses is; a name that does not resolve now is
    left to the connection (which refuses it then, if it must)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return str(URL_HOST)
    if parts.scheme not in ("http", "https"):
        return str(URL_SCHEME)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return str(URL_CREDENTIALS)
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        return str(URL_QUERY)
    host = parts.hostname
    if not host:
        return str(URL_HOST)
    try:
        addresses = [host] if _is_literal(host) else (_resolve(host, port) if resolve else [])
    except (OSError, UnicodeError):
        addresses = []
    if any(address_refused(ipaddress.ip_address(a)) for a in addresses):
        return str(URL_PRIVATE)
    return None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def guarded_create_connection(address, *args):
    """`socket.create_connection`, but only to addresses the rule allows: the name is resolved
    once and the socket connects to one of the addresses that were checked."""
    host, port = address
    addresses = _resolve(host, port)
    refused = [a for a in addresses if address_refused(ipaddress.ip_address(a))]
    if refused or not addresses:
        raise AddressRefused(f"holder address refused: {host} is on a non-public network")
    last: OSError | None = None
    for ip in addresses:
        try:
            return socket.create_connection((ip, port), *args)  # timeout, source address
        except OSError as exc:
            last = exc
    raise last or OSError(f"could not connect to {host}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_create_connection


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    # The TLS layer still checks the certificate against the host name (server_hostname).
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_create_connection


class GuardedHolderClient(HolderClient):
    """A holder client whose (kept-alive) connection goes through `guarded_create_connection`:
    it is opened to an address checked at that moment, so a name that re-resolves to a
    private address (DNS rebinding) gets nowhere."""

    http_connection = _GuardedHTTPConnection
    https_connection = _GuardedHTTPSConnection
