"""Where a webhook may be posted: the URL's shape, and the address it resolves to.

An API key can make Usher post to any URL, so a webhook is a way to reach whatever Usher's
own network can reach (a cloud's metadata service, an admin port on localhost). In
production a target must be `https` and every address its host resolves to must be
public, unless `USHER_WEBHOOK_ALLOW_PRIVATE` says the installation wants otherwise. The
rule is checked when an endpoint is saved and again at each send, on the very address
the connection then goes to, so a DNS answer that changes in between (rebinding) gains
nothing.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address

import httpx

from app.config import Settings

MAX_URL_LENGTH = 2048
# IPv6 addresses a NAT64 gateway turns into the IPv4 address in their last 32 bits.
_NAT64 = IPv6Network("64:ff9b::/96")

IPAddress = IPv4Address | IPv6Address


class UnsafeTarget(Exception):
    """The URL may not be posted to; `reason` says why, in a sentence for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses to connect to for it, in the resolver's order."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]

    def pinned_url(self, address: IPAddress) -> httpx.URL:
        """The URL with its host replaced by one of the checked addresses."""
        return self.url.copy_with(host=str(address))

    @property
    def host_header(self) -> str:
        """What the `Host` header says: the URL's own host (and port, if not the default)."""
        return self.url.netloc.decode("ascii")

    @property
    def tls_name(self) -> str | None:
        """The name TLS must present a certificate for (SNI), None for plain http."""
        return self.url.raw_host.decode("ascii") if self.url.scheme == "https" else None


def parse_url(settings: Settings, url: str) -> httpx.URL:
    """The URL if its shape is acceptable (see the module's docstring), else UnsafeTarget."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"url must be at most {MAX_URL_LENGTH} characters.")
    if any(c.isspace() for c in url):
        raise UnsafeTarget("url must not contain spaces.")
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError):
        raise UnsafeTarget("url is not a valid URL.") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UnsafeTarget("url must be an absolute http or https URL.")
    if parsed.userinfo:
        raise UnsafeTarget("url must not contain credentials; the signature authenticates Usher.")
    if port is not None and not 0 < port < 65536:
        raise UnsafeTarget("url has an invalid port.")
    if settings.is_production and parsed.scheme != "https":
        raise UnsafeTarget("url must use https.")
    return parsed


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (mapped, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def non_public_kind(address: IPAddress) -> str | None:
    """What makes `address` unfit for a webhook ("a loopback address"…), None if public."""
    if isinstance(address, IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
        return non_public_kind(inner)
    checks = (
        ("an unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        # Shared address space (100.64.0.0/10) and the like: private in all but name.
        ("an address not routed on the internet", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to now (an IP literal resolves to itself)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"the host {host} could not be resolved ({exc}).") from None
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is no part of the address.
    found = [ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise UnsafeTarget(f"the host {host} could not be resolved.")
    return list(dict.fromkeys(found))


def check_addresses(settings: Settings, host: str, addresses: list[IPAddress]) -> None:
    """UnsafeTarget if the rule refuses any of the addresses (in production, unless allowed)."""
    if not settings.is_production or settings.webhook_allow_private:
        return
    for address in addresses:
        kind = non_public_kind(address)
        if kind is not None:
            where = "is" if _literal(host) == address else f"resolves to {address},"
            raise UnsafeTarget(
                f"url must not point at a private or local address: {host} {where} {kind}."
            )


async def check_url(settings: Settings, url: str) -> httpx.URL:
    """The URL if an endpoint may be saved with it now, else UnsafeTarget.

    The address rule needs DNS, so it is applied only where it applies (production
    without `USHER_WEBHOOK_ALLOW_PRIVATE`); development accepts any http(s) URL.
    """
    parsed = parse_url(settings, url)
    if settings.is_production and not settings.webhook_allow_private:
        host = parsed.raw_host.decode("ascii")
        check_addresses(settings, parsed.host, await resolve(host, _port(parsed)))
    return parsed


async def target_for(settings: Settings, url: str) -> Target:
    """The checked addresses to post `url` to now, else UnsafeTarget."""
    parsed = parse_url(settings, url)
    addresses = await resolve(parsed.raw_host.decode("ascii"), _port(parsed))
    check_addresses(settings, parsed.host, addresses)
    return Target(url=parsed, addresses=tuple(addresses))


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)
