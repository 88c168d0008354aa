"""The first, in-process benchmark, kept for a quick look without a server:
`python -m bench.inprocess` (SQLite) or
`BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/usher_bench python -m bench.inprocess`
(an empty database of its own: not the seeded ones of bench/run.py).

Measures, through GraphQL over the ASGI app (no network):
- invite: wall time of `invite` with 100 invitees;
- list: wall time and SQL statements for a page of 50 invitations with their group,
  inviter and events (the DataLoaders should keep the statement count constant);
- preview: `invitationByToken` requests per second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tortoise import Tortoise

from app.cli import migrate_database
from app.config import Settings, tortoise_config
from app.main import create_app
from app.services.auth import make_dev_jwt


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite://{Path(tmp) / 'bench.db'}"
        await migrate_database(url)
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        try:
            await run(url)
        finally:
            await Tortoise.close_connections()


async def run(url: str) -> None:
    settings = Settings(database_url=url, redis_url=None)
    app = create_app(settings, run_jobs=False)
    token = make_dev_jwt(settings, sub="owner", email="owner@acme.com", name="Owner")
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

        async def gql(query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
            r = await http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
            body: dict[str, object] = r.json()
            assert "errors" not in body, body
            return body

        await gql(
            'mutation { createGroup(input: {type: "org", externalId: "acme", name: "Acme"}) { errors { code } } }'
        )
        invite = """mutation($input: InviteInput!) { invite(input: $input) { invitations { id inviteUrl } errors { code } } }"""
        times = []
        urls: list[str] = []
        for batch in range(5):
            invitees = [{"email": f"p{batch}-{i}@example.com"} for i in range(100)]
            start = time.perf_counter()
            body = await gql(
                invite, {"input": {"groupType": "org", "groupId": "acme", "invitees": invitees}}
            )
            times.append(time.perf_counter() - start)
            urls += [i["inviteUrl"] for i in body["data"]["invite"]["invitations"]]  # type: ignore[index]
        print(
            f"invite, 100 invitees: median {statistics.median(times) * 1000:.0f} ms "
            f"({statistics.median(times) * 10:.1f} ms per invitee)"
        )

        page = """{ invitationsByGroup(groupType: "org", groupId: "acme", first: 50) {
            totalCount edges { node { id email status inviteUrl group { name } inviter { name } events { type } } } } }"""
        counter = _Counter()
        db_log = logging.getLogger("tortoise.db_client")
        db_log.addHandler(counter)
        db_log.setLevel(logging.DEBUG)
        times = []
        for _ in range(20):
            counter.count = 0
            start = time.perf_counter()
            await gql(page)
            times.append(time.perf_counter() - start)
        db_log.removeHandler(counter)
        print(
            f"page of 50 invitations with group, inviter, events: median "
            f"{statistics.median(times) * 1000:.1f} ms, {counter.count} SQL statements"
        )

        preview = "query($t: String!) { invitationByToken(token: $t) { status groupName } }"
        tokens = [u.split("token=")[1] for u in urls[:200]]
        start = time.perf_counter()
        for t in tokens:
            await gql(preview, {"t": t})
        elapsed = time.perf_counter() - start
        print(
            f"invitationByToken: {len(tokens) / elapsed:.0f} requests/s (sequential, one process)"
        )


if __name__ == "__main__":
    asyncio.run(main())
