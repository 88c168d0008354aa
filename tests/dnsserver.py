"""A real DNS server (UDP, dnslib) answering TXT queries for the names a test publishes.

In the tests it runs on the test's event loop, on a free port of 127.0.0.1; from a shell,
`python -m tests.dnsserver --port 5353 _usher.acme.com=usher-verification=…` serves the
records given until interrupted, for trying a real `usher serve` against it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class DNSServer(asyncio.DatagramProtocol):
    """Answers TXT queries from `records`; NXDOMAIN for names it does not know.

    A name published with no records exists but has no TXT record (an empty answer).
    With `silent`, queries go unanswered, as from a server that is down.
    """

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self.silent = False
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        """The UDP port it listens on."""
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    @property
    def address(self) -> str:
        """`host:port`, as USHER_DNS_NAMESERVERS takes it."""
        return f"127.0.0.1:{self.port}"

    def publish(self, name: str, *texts: str) -> None:
        """Serve these TXT records at `name` (replacing what it had)."""
        self.records[_key(name)] = list(texts)

    def reset(self) -> None:
        """Forget every record and query; answer again."""
        self.records.clear()
        self.queries.clear()
        self.silent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport, though asyncio types the argument as the base.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        request = DNSRecord.parse(data)
        name = _key(str(request.q.qname))
        self.queries.append(name)
        if self.silent or self.transport is None:
            return
        self.transport.sendto(self.answer(request, name).pack(), addr)

    def answer(self, request: Any, name: str) -> Any:
        """The reply to one query."""
        reply = request.reply()
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for text in self.records[name]:
                # One record may hold several strings of at most 255 bytes each.
                raw = text.encode()
                parts = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(parts), ttl=0))
        return reply


async def start_dns_server(port: int = 0) -> DNSServer:
    """A server listening on 127.0.0.1 (`port` 0: a free one)."""
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        DNSServer, local_addr=("127.0.0.1", port)
    )
    server.transport = transport  # connection_made may come a moment later
    return server


@pytest.fixture(scope="session")
async def dns_server_session() -> AsyncIterator[DNSServer]:
    server = await start_dns_server()
    yield server
    assert server.transport is not None
    server.transport.close()


@pytest.fixture
def dns_server(dns_server_session: DNSServer) -> DNSServer:
    """The test DNS server, emptied for this test."""
    dns_server_session.reset()
    return dns_server_session


async def _serve(port: int, records: list[str]) -> None:
    server = await start_dns_server(port)
    for record in records:
        name, _, text = record.partition("=")
        server.publish(name, text)
    print(f"Serving {len(records)} TXT records on udp://{server.address}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    """Serve TXT records from the command line: NAME=TEXT arguments."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=5353)
    p.add_argument("records", nargs="*", help="NAME=TEXT, e.g. _usher.acme.com=usher-…")
    args = p.parse_args()
    asyncio.run(_serve(args.port, args.records))


if __name__ == "__main__":
    main()
