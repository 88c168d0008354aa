"""Fill a PostgreSQL database with N invitations, set-based (INSERT … SELECT generate_series).

Each size gets a database of its own, `<BENCH_DATABASE_URL's name>_<size>` (usher_bench_10k,
usher_bench_100k, usher_bench_1m), kept between runs: a comment on the database records
what was seeded (seed version, size, latest migration), and a database whose comment
does not match is dropped and seeded again.

What is in it, for N invitations:
- the group org/acme holds every tenth invitation (100k at 1M), the others are spread
  over N/1000 groups org/g<k>;
- users: `owner` (owner of every group, the inviter of acme's invitations), `ben`
  (invitee of a few open invitations, for `invitations(EMAIL)`), and N/100 members of acme;
- invitation i has the id md5('inv-' || i)::uuid, so `invitation_id(i)` and a token for
  any i can be computed without reading the database; statuses by i % 20: 65% PENDING
  (unexpired), 10% ACCEPTED, 5% DECLINED, 5% REVOKED, 10% EXPIRED, 5% DRAFT;
- per invitation its audit trail (created, sent, and the final event), a feed event and
  its sent outbox row, as Usher would have written them.

`python -m bench.seed --sizes 10k` seeds without running anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.cli import migrate_database

SEED_VERSION = 3
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/usher_bench"
ACME = ("org", "acme")
OWNER = {"sub": "owner", "email": "owner@acme.com", "name": "Owner"}
INVITEE = {"sub": "ben", "email": "ben@bench.example", "name": "Ben"}
INVITEE_OPEN = 5  # open invitations of ben, one in each of the first groups
# Databases the harness must never touch, whatever it is told.
PROTECTED = frozenset({"test", "usher_test", "postgres", "template0", "template1"})


def parse_size(text: str) -> int:
    """`10k` → 10_000, `1m` → 1_000_000, `2500` → 2500."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def size_label(n: int) -> str:
    """10_000 → `10k`, 1_000_000 → `1m`."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def md5_uuid(text: str) -> uuid.UUID:
    """The uuid PostgreSQL's md5(text)::uuid gives."""
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


def invitation_id(i: int) -> uuid.UUID:
    """The id of seeded invitation i."""
    return md5_uuid(f"inv-{i}")


def group_id(key: str) -> uuid.UUID:
    """The id of seeded group `key` ('acme' or 'g<k>')."""
    return md5_uuid(f"grp-{key}")


def is_pending(i: int) -> bool:
    """Invitation i is PENDING and unexpired (so its token previews as PENDING)."""
    return i % 20 < 12 or i % 20 == 19


@dataclass(frozen=True)
class SizedDb:
    """One seeded database: its size and its URL."""

    n: int
    url: str

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.lstrip("/")


def database_for(base_url: str, n: int) -> SizedDb:
    """The database of size `n` next to `base_url`'s (its name with `_<size>` appended)."""
    parts = urlsplit(base_url)
    name = f"{parts.path.lstrip('/') or 'usher_bench'}_{size_label(n)}"
    if name in PROTECTED or not name.startswith("usher_bench"):
        raise SystemExit(f"refusing to use database {name!r}: bench databases are usher_bench_*")
    return SizedDb(n, urlunsplit(parts._replace(path="/" + name)))


def asyncpg_dsn(url: str) -> str:
    """Tortoise's `postgres://` URL as asyncpg takes it."""
    return "postgresql://" + url.split("://", 1)[1]


def latest_migration() -> str:
    """The name of the newest migration in `migrations/` (a new one means a new schema)."""
    folder = Path(__file__).resolve().parent.parent / "migrations"
    return sorted(p.stem for p in folder.glob("0*.py"))[-1]


def stamp(n: int) -> str:
    """What the database's comment says once seeded with `n` invitations."""
    return f"usher-bench seed v{SEED_VERSION} n={n} schema={latest_migration()}"


async def _admin(db: SizedDb) -> asyncpg.Connection:
    """A connection to the server's `postgres` database, for CREATE/DROP DATABASE."""
    parts = urlsplit(asyncpg_dsn(db.url))
    return await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))


async def current_stamp(db: SizedDb) -> str | None:
    """The comment of the database, None if it does not exist."""
    conn = await _admin(db)
    try:
        row = await conn.fetchrow(
            "SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname=$1",
            db.name,
        )
    finally:
        await conn.close()
    return None if row is None else (row["c"] or "")


async def drop(db: SizedDb) -> None:
    """Drop the database of this size (if it exists)."""
    conn = await _admin(db)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        await conn.close()


async def ensure(db: SizedDb, *, force: bool = False, log: bool = True) -> bool:
    """Seed the database unless it already holds this seed; True if it seeded."""
    if not force and await current_stamp(db) == stamp(db.n):
        return False
    started = time.perf_counter()
    await drop(db)
    conn = await _admin(db)
    try:
        await conn.execute(f'CREATE DATABASE "{db.name}"')
    finally:
        await conn.close()
    await migrate_database(db.url)
    conn = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        for label, sql in statements(db.n):
            t = time.perf_counter()
            await conn.execute(sql)
            if log:
                print(
                    f"  seed {size_label(db.n)}: {label} {time.perf_counter() - t:.1f}s", flush=True
                )
        await conn.execute("ANALYZE")
        await conn.execute(f"COMMENT ON DATABASE \"{db.name}\" IS '{stamp(db.n)}'")
    finally:
        await conn.close()
    if log:
        print(f"  seeded {db.name} in {time.perf_counter() - started:.0f}s", flush=True)
    return True


def statements(n: int) -> list[tuple[str, str]]:
    """The SQL that fills an empty, migrated database with `n` invitations."""
    groups = max(n // 1000, 1)
    members = max(n // 100, 10)
    # Group of invitation i: acme for every tenth, else g<i mod groups>.
    group_of = f"CASE WHEN i % 10 = 0 THEN md5('grp-acme')::uuid ELSE md5('grp-g' || (i % {groups}))::uuid END"
    status = """CASE
        WHEN i % 20 < 12 OR i % 20 = 19 THEN 'pending'
        WHEN i % 20 < 14 THEN 'accepted'
        WHEN i % 20 = 14 THEN 'declined'
        WHEN i % 20 = 15 THEN 'revoked'
        WHEN i % 20 < 18 THEN 'expired'
        ELSE 'draft' END"""
    owner = "md5('user-owner')::uuid"
    # Newest first is i ascending: invitation i was created i seconds x 60 days / n ago.
    created = f"(now() - interval '1 second' * (i::float8 * 5184000 / {n}))"
    return [
        ("session", "SET session_replication_role = replica; SET synchronous_commit = off"),
        (
            "users",
            f"""
            INSERT INTO users (id, external_id, email, name, created_at)
            SELECT md5('user-owner')::uuid, '{OWNER["sub"]}', '{OWNER["email"]}', '{OWNER["name"]}', now() - interval '90 days'
            UNION ALL
            SELECT md5('user-ben')::uuid, '{INVITEE["sub"]}', '{INVITEE["email"]}', '{INVITEE["name"]}', now() - interval '90 days'
            UNION ALL
            SELECT md5('user-' || u)::uuid, 'member-' || u, 'member' || u || '@acme.com',
                   'Member ' || u, now() - interval '80 days'
            FROM generate_series(1, {members}) AS u""",
        ),
        (
            "groups",
            f"""
            INSERT INTO groups (id, type, external_id, name, autojoin_role, created_at)
            SELECT md5('grp-acme')::uuid, '{ACME[0]}', '{ACME[1]}', 'Acme', NULL, now() - interval '90 days'
            UNION ALL
            SELECT md5('grp-g' || k)::uuid, 'org', 'g' || k, 'Group ' || k, NULL, now() - interval '90 days'
            FROM generate_series(0, {groups - 1}) AS k""",
        ),
        (
            "memberships",
            f"""
            INSERT INTO memberships (id, role, permissions, joined_via, invitation_id, joined_at, group_id, user_id)
            SELECT md5('mem-owner-' || g.id)::uuid, 'owner', '[]'::jsonb, 'creator', NULL::uuid, g.created_at, g.id, {owner}
            FROM groups g
            UNION ALL
            SELECT md5('mem-' || u)::uuid, CASE WHEN u % 10 = 0 THEN 'admin' ELSE 'member' END, '[]'::jsonb,
                   'invitation', NULL::uuid, now() - interval '80 days' + interval '1 second' * u,
                   md5('grp-acme')::uuid, md5('user-' || u)::uuid
            FROM generate_series(1, {members}) AS u""",
        ),
        (
            "invitations",
            f"""
            INSERT INTO invitations (id, target_type, email, email_key, open_key, first_name, last_name,
                role, permissions, message, metadata, return_to, status, expires_at, created_at,
                updated_at, accepted_at, send_email, delivery_status, delivery_error, message_id,
                send_count, last_sent_at, reminder_sent_at, token_version, max_uses, use_count,
                accepted_by_id, group_id, inviter_id, inviter_api_key_id)
            SELECT md5('inv-' || i)::uuid, 'email', 'Person' || i || '@example.com',
                'person' || i || '@example.com',
                CASE WHEN s IN ('pending', 'draft') THEN 'person' || i || '@example.com' END,
                'First' || i, 'Last' || i, 'member', '[]'::jsonb, NULL, NULL, NULL, s,
                CASE WHEN s = 'expired' THEN c + interval '7 days' - interval '61 days'
                     ELSE now() + interval '2 days' + interval '1 second' * ((i::bigint * 7919) % 7603200) END,
                c, c, CASE WHEN s = 'accepted' THEN c + interval '1 hour' END, true,
                CASE WHEN s = 'draft' THEN 'not_sent' ELSE 'sent' END, NULL,
                CASE WHEN s = 'draft' THEN NULL ELSE '<' || i || '@bench.example>' END,
                CASE WHEN s = 'draft' THEN 0 ELSE 1 END,
                CASE WHEN s = 'draft' THEN NULL ELSE c + interval '1 minute' END,
                NULL, 1, NULL, 0, NULL, grp,
                CASE WHEN i % 10 = 0 THEN {owner} ELSE md5('user-' || (1 + i % {members}))::uuid END,
                NULL
            FROM (SELECT i, {status} AS s, {created} AS c, {group_of} AS grp
                  FROM generate_series(0, {n - 1}) AS i) AS rows""",
        ),
        (
            "ben's open invitations",
            f"""
            INSERT INTO invitations (id, target_type, email, email_key, open_key, role, permissions,
                status, expires_at, created_at, updated_at, send_email, delivery_status,
                send_count, token_version, use_count, group_id, inviter_id)
            SELECT md5('inv-ben-' || k)::uuid, 'email', '{INVITEE["email"]}', '{INVITEE["email"]}',
                '{INVITEE["email"]}', 'member', '[]'::jsonb, 'pending', now() + interval '5 days',
                now() - interval '1 day' * k, now(), true, 'sent', 1, 1, 0,
                CASE WHEN k = 0 THEN md5('grp-acme')::uuid ELSE md5('grp-g' || k)::uuid END, {owner}
            FROM generate_series(0, {min(INVITEE_OPEN, groups) - 1}) AS k""",
        ),
        (
            "audit trail",
            """
            INSERT INTO invitation_events (id, type, detail, created_at, actor_api_key_id, actor_user_id, invitation_id)
            SELECT md5('ev-c-' || id)::uuid, 'created', NULL::jsonb, created_at, NULL::uuid, inviter_id, id FROM invitations
            UNION ALL
            SELECT md5('ev-s-' || id)::uuid, 'sent', '{"kind": "invitation", "attempts": 1}'::jsonb,
                   coalesce(last_sent_at, created_at + interval '1 minute'),
                   NULL, NULL, id FROM invitations WHERE status <> 'draft'
            UNION ALL
            SELECT md5('ev-f-' || id)::uuid, status, NULL, updated_at + interval '2 hours', NULL, NULL, id
            FROM invitations WHERE status IN ('accepted', 'declined', 'revoked', 'expired')""",
        ),
        (
            "feed events",
            """
            INSERT INTO events (id, type, data, created_at, group_id, invitation_id)
            SELECT md5('feed-' || id)::uuid, 'invitation.created',
                   jsonb_build_object('invitation', jsonb_build_object('id', id, 'email', email,
                       'status', 'PENDING'), 'group', jsonb_build_object('id', group_id)),
                   created_at, group_id, id
            FROM invitations""",
        ),
        (
            "outbox",
            """
            INSERT INTO outbox (id, kind, token_version, created_at, enqueued_at, sent_at, failed_at,
                attempts, last_error, invitation_id, endpoint_id, event_id)
            SELECT md5('out-' || id)::uuid, 'invitation', 1, created_at, created_at, coalesce(last_sent_at, created_at + interval '1 minute'), NULL,
                   1, NULL, id, NULL, NULL
            FROM invitations WHERE status <> 'draft'""",
        ),
    ]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10k,100k,1m")
    p.add_argument("--force", action="store_true", help="seed again even if up to date")
    p.add_argument("--drop", action="store_true", help="drop the databases instead")
    args = p.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL
    for size in args.sizes.split(","):
        db = database_for(base, parse_size(size))
        if args.drop:
            await drop(db)
            print(f"dropped {db.name}")
        elif not await ensure(db, force=args.force):
            print(f"{db.name} is up to date")


if __name__ == "__main__":
    asyncio.run(main())
