"""The SQL Usher runs for each benchmarked operation, written to bench/SQL.md.

`python -m bench.sqllog [--size 10k]`: runs each operation once through the ASGI app
in-process, on the seeded database of that size, with Tortoise's `tortoise.db_client`
logger captured; then one batch of the expiry sweep and one email delivery, called as the
worker calls them. Statements are listed in order with their count; parameters are left out
(they hold tokens and addresses). Transactions are marked BEGIN/COMMIT when Tortoise logs
them; asyncpg opens them without a statement of its own, so they may not show.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from tortoise import Tortoise

from app.config import Settings, tortoise_config
from app.main import create_app
from bench import ops, seed

OUT = Path(__file__).resolve().parent / "SQL.md"


class Capture(logging.Handler):
    """Keeps every statement Tortoise logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        query = record.args[0] if isinstance(record.args, tuple) and record.args else record.msg
        text = str(query)
        if text.startswith(("Created connection pool", "Closed connection pool")):
            return
        self.statements.append(_shorten(text))


def _shorten(sql: str) -> str:
    """One line; long IN lists and VALUES lists cut to their first items."""
    sql = re.sub(r"\s+", " ", sql).strip()
    sql = re.sub(r"(\$\d+(?:,\s*\$\d+){3,})", lambda m: _cut(m.group(1)), sql)
    sql = re.sub(
        r"(\((?:\$\d+,?\s*)+\))(?:,\s*\((?:\$\d+,?\s*)+\)){2,}", r"\1, … (one per row)", sql
    )
    return sql


def _cut(marks: str) -> str:
    items = [m.strip() for m in marks.split(",")]
    return f"{items[0]}, {items[1]}, … {items[-1]} ({len(items)} values)"


async def capture(work: Callable[[], Awaitable[Any]]) -> list[str]:
    """The statements `work` runs."""
    handler = Capture()
    logger = logging.getLogger("tortoise.db_client")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        await work()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    return handler.statements


COUNTS: list[tuple[str, int]] = []


def section(title: str, note: str, statements: list[str]) -> str:
    """A Markdown section listing statements with their count."""
    COUNTS.append((title, len(statements)))
    lines = [f"## {title}: {len(statements)} statements", "", note, "", "```sql"]
    lines += [f"{n:>3}. {s}" for n, s in enumerate(statements, 1)]
    return "\n".join([*lines, "```", ""])


async def run(db: seed.SizedDb) -> str:
    """The whole SQL.md text."""
    settings = Settings(database_url=db.url, redis_url=None, quota_invites_per_group_day=10**9)
    app = create_app(settings, run_jobs=False)
    owner = {"Authorization": f"Bearer {ops.owner_jwt(settings)}"}
    ben = {"Authorization": f"Bearer {ops.invitee_jwt(settings)}"}
    transport = httpx.ASGITransport(app=app)
    parts = [
        "# The SQL Usher runs, per operation",
        "",
        f"Written by `python -m bench.sqllog` on the seeded {seed.size_label(db.n)} database "
        "(see bench/seed.py), against the code of this commit. Parameters are left out. "
        "The statement list of an operation is what `bench/floor.py` mirrors for the reads. "
        "Transactions and savepoints (BEGIN, SAVEPOINT, COMMIT) are not logged by Tortoise and "
        "not listed: `invite` opens one transaction per invitee, with a savepoint per quota "
        "counter when quotas are in the database. Run with PYTHONHASHSEED=0, so that Tortoise "
        "lists columns in the same order every time and the file diffs cleanly.",
        "",
        "{counts}",
        "",
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

        async def post(content: str, headers: dict[str, str]) -> None:
            r = await http.post(
                "/graphql",
                content=content,
                headers={**headers, "content-type": "application/json"},
            )
            assert r.status_code == 200 and "errors" not in r.json(), r.text

        first_page = await http.post(
            "/graphql",
            content=ops.list_body(),
            headers={**owner, "content-type": "application/json"},
        )
        cursor = first_page.json()["data"]["invitationsByGroup"]["pageInfo"]["endCursor"]
        cases = [
            ("`invitationsByGroup` first 50", "As acme's owner (JWT).", ops.list_body(), owner),
            (
                "`invitationsByGroup` next page (after a cursor)",
                "",
                ops.list_body(after=cursor),
                owner,
            ),
            (
                "`invitationsByGroup` status PENDING",
                "",
                ops.list_body(status=["PENDING"]),
                owner,
            ),
            ("`invitations(EMAIL)`", "As ben (JWT, verified email).", ops.open_body(), ben),
            (
                "`invitationByToken` (the preview)",
                "Anonymous.",
                ops.preview_body(ops.token_of(settings, 1)),
                {},
            ),
        ]
        for title, note, content, headers in cases:
            await post(content, headers)  # warm: the first request of a kind loads more
            statements = await capture(partial(post, content, headers))
            parts.append(section(title, note, statements))
        tag = uuid.uuid4().hex[:8]
        emails = [f"sql-{tag}-{i}@invite.example" for i in range(3)]
        invite = await capture(lambda: post(ops.invite_body(emails), owner))
        parts.append(
            section(
                "`invite` with 3 invitees",
                "As acme's owner. Each invitee is its own transaction; with Redis the quotas "
                "are counted there (here without Redis: in `quota_counters`). With N invitees "
                "the per-invitee block repeats N times.",
                invite,
            )
        )
        parts.append(await _sweep_section())
        parts.append(await _deliver_section(settings, emails[0]))
    await _cleanup(db)
    counts = "| operation | statements |\n|---|---|\n" + "\n".join(
        f"| {title} | {n} |" for title, n in COUNTS
    )
    return "\n".join(parts).replace("{counts}", counts, 1)


async def _sweep_section() -> str:
    from app.jobs.expiry import sweep_expired
    from app.models import Invitation

    conn = Tortoise.get_connection("default")
    await conn.execute_query(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' "
        "WHERE email_key LIKE 'sql-%@invite.example'"
    )
    settings = Settings(batch_size=500)
    statements = await capture(lambda: sweep_expired({"settings": settings}))
    assert await Invitation.filter(email_key__startswith="sql-", status="expired").exists()
    return section(
        "expiry sweep (`sweep_expired`, one batch of 3)",
        "Called as the worker calls it. For 100k overdue the block repeats once per batch "
        "of `USHER_BATCH_SIZE` (500): 200 times.",
        statements,
    )


async def _deliver_section(settings: Settings, email: str) -> str:
    from app.jobs.email import deliver
    from app.mail.transports import FolderTransport
    from app.models import Invitation, OutboxMessage

    conn = Tortoise.get_connection("default")
    invitation = await Invitation.get(email_key=email)
    await conn.execute_query(
        "UPDATE invitations SET status='pending', open_key=email_key, expires_at=now() + interval "
        "'1 day' WHERE id = $1",
        [invitation.id],
    )
    message = await OutboxMessage.get(invitation_id=invitation.id, kind="invitation")
    mail_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "usher-bench-sqllog"
    ctx = {"settings": settings, "transport": FolderTransport(str(mail_dir))}
    statements = await capture(lambda: deliver(ctx, outbox_id=str(message.id)))
    return section(
        "email delivery (`deliver`, one message)",
        "Called as the worker calls it, quotas in the database (no Redis).",
        statements,
    )


async def _cleanup(db: seed.SizedDb) -> None:
    conn = Tortoise.get_connection("default")
    await conn.execute_query(
        "DELETE FROM invitations WHERE group_id = $1 AND email_key LIKE 'sql-%@invite.example'",
        [seed.group_id("acme")],
    )
    await conn.execute_query("DELETE FROM quota_counters")


async def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Tortoise orders columns by a set: a fixed hash seed makes the file diff cleanly.
        os.execve(
            sys.executable,
            [sys.executable, "-m", "bench.sqllog", *sys.argv[1:]],
            {**os.environ, "PYTHONHASHSEED": "0"},
        )
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", default="10k")
    args = p.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL") or seed.DEFAULT_URL
    db = seed.database_for(base, seed.parse_size(args.size))
    await seed.ensure(db)
    await Tortoise.init(config=tortoise_config(db.url), _enable_global_fallback=True)
    try:
        text = await run(db)
    finally:
        await Tortoise.close_connections()
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
