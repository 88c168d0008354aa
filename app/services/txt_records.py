"""TXT records, read from DNS: how a group shows it controls an email domain.

Lookups go to the system's resolvers, or to the servers in USHER_DNS_NAMESERVERS, with a
short timeout, and are never cached here: someone who has just published a record and
asks again must be answered from DNS, not from what Usher saw a minute ago.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdtypes.ANY.TXT
import dns.resolver

from app.config import Settings
from app.services.text import is_clean

# What an error message quotes of the records found: the records are the domain owner's
# text, and a domain may publish many.
_QUOTED_RECORDS = 5
_QUOTED_LENGTH = 100


@dataclass(frozen=True)
class Lookup:
    """What a TXT lookup found: the records' texts, or why there were none."""

    name: str
    records: tuple[str, ...] = ()
    problem: str | None = None

    def describe(self) -> str:
        """What was found, for an error message people read."""
        if self.problem is not None:
            return self.problem
        if not self.records:
            return "there is none"
        quoted = ", ".join(f'"{_printable(r)}"' for r in self.records[:_QUOTED_RECORDS])
        more = len(self.records) - _QUOTED_RECORDS
        return f"found only {quoted}" + (f" and {more} more" if more > 0 else "")


def _printable(text: str) -> str:
    text = text if is_clean(text) else "".join(c if is_clean(c) else "?" for c in text)
    return text if len(text) <= _QUOTED_LENGTH else text[:_QUOTED_LENGTH] + "…"


def _resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    servers = settings.dns_servers
    resolver = dns.asyncresolver.Resolver(configure=not servers)
    if servers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(a, p) for a, p in servers]
    resolver.lifetime = settings.dns_timeout_seconds
    return resolver


async def txt_records(settings: Settings, name: str) -> Lookup:
    """The TXT records at `name` (a fully qualified name, without the final dot)."""
    try:
        answer = await _resolver(settings).resolve(f"{name}.", "TXT", search=False)
    except dns.resolver.NXDOMAIN:
        return Lookup(name, problem="the name does not exist")
    except dns.resolver.NoAnswer:
        return Lookup(name)
    except dns.exception.Timeout:
        return Lookup(name, problem="no answer in time from the DNS servers")
    except dns.resolver.NoNameservers:
        return Lookup(name, problem="the DNS servers failed to answer")
    except dns.exception.DNSException as exc:
        return Lookup(name, problem=f"a DNS error ({type(exc).__name__})")
    texts = []
    for rdata in answer:
        assert isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
        # A record longer than 255 bytes comes in several strings, read as one text.
        texts.append(b"".join(rdata.strings).decode("utf-8", errors="replace"))
    return Lookup(name, records=tuple(texts))
