"""The floor: the least a server can do to answer the benchmark's requests.

A bare Starlette app on asyncpg, run under the same uvicorn as Usher
(`uvicorn bench.floor:app`). It answers POST /graphql with the same JSON bodies, dispatching
on `operationName` instead of parsing GraphQL, and returns the same JSON. For reads it runs
the very statements Usher runs (bench/SQL.md), in the same order and with the same overlap,
so Usher ÷ floor is what Usher's Python costs on top of its SQL; how the SQL itself scales
shows in the 1M ÷ 10k latency rows. For `invite` it does what any implementation must: the
caller, the group and their role, then one transaction per call that inserts the
invitations, their audit entries, their feed events and their outbox rows, a statement per
table (executemany).

Settings come from the same environment as Usher's (DATABASE_URL, USHER_SECRET_KEY,
USHER_JWT_SECRET, USHER_ACCEPT_URL); the pool has Tortoise's default size (1 to 5).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings
from app.services.tokens import make_token, read_token

settings = Settings()
MANAGERS = set(settings.roles_that_invite)
EVENTS_SHOWN = 50
pool: asyncpg.Pool


def _dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(_dsn(settings.database_url), min_size=1, max_size=5)
    try:
        yield
    finally:
        await pool.close()


def answer(data: Any) -> Response:
    return Response(json.dumps({"data": data}), media_type="application/json")


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def cursor_of(stamp: datetime, pk: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([stamp.isoformat(), str(pk)]).encode()).decode()


def read_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    stamp, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return datetime.fromisoformat(stamp).astimezone(UTC), uuid.UUID(pk)


def invite_url(invitation_id: uuid.UUID, version: int) -> str:
    return settings.accept_url.replace(
        "{token}", make_token(settings.secret_keys[0], invitation_id, version)
    )


def effective_status(row: asyncpg.Record, now: datetime) -> str:
    if row["status"] == "pending" and row["expires_at"] <= now:
        return "EXPIRED"
    return str(row["status"]).upper()


async def caller(request: Request) -> asyncpg.Record:
    """Verify the JWT and read its user (the statement Usher's sync_user runs)."""
    token = request.headers["authorization"].split(" ", 1)[1]
    claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"])
    user = await pool.fetchrow(
        'SELECT "name","created_at","external_id","id","email" FROM "users" '
        'WHERE "external_id"=$1 LIMIT $2',
        claims["sub"],
        1,
    )
    assert user is not None
    return user


async def managed_group(user: asyncpg.Record, group_type: str, external_id: str) -> asyncpg.Record:
    group = await pool.fetchrow(
        'SELECT "name","autojoin_role","created_at","external_id","type","id" FROM "groups" '
        'WHERE "type"=$1 AND "external_id"=$2 LIMIT $3',
        group_type,
        external_id,
        1,
    )
    assert group is not None
    member = await pool.fetchrow(
        'SELECT "role","invitation_id","joined_at","joined_via","permissions","group_id",'
        '"user_id","id" FROM "memberships" WHERE "user_id"=$1 AND "group_id"=$2 LIMIT $3',
        user["id"],
        group["id"],
        1,
    )
    assert member is not None and member["role"] in MANAGERS
    return group


async def groups_by_id(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    marks = ", ".join(f"${n}" for n in range(1, len(ids) + 1))
    rows = await pool.fetch(
        'SELECT "name","autojoin_role","created_at","external_id","type","id" FROM "groups" '
        f'WHERE "id" IN ({marks})',
        *ids,
    )
    return {r["id"]: r for r in rows}


async def users_by_id(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    if not ids:
        return {}
    marks = ", ".join(f"${n}" for n in range(1, len(ids) + 1))
    rows = await pool.fetch(
        f'SELECT "name","created_at","external_id","id","email" FROM "users" WHERE "id" IN ({marks})',
        *ids,
    )
    return {r["id"]: r for r in rows}


def status_where(wanted: Sequence[str], first_mark: int, now: datetime) -> tuple[str, list[Any]]:
    """Usher's `status_where`: the effective status, with numbered placeholders."""
    parts: list[str] = []
    params: list[Any] = []
    n = first_mark

    def mark() -> str:
        nonlocal n
        n += 1
        return f"${n - 1}"

    for value in sorted(s.lower() for s in wanted):
        if value == "pending":
            parts.append(f'("status" = {mark()} AND "expires_at" > {mark()})')
            params += ["pending", now]
        elif value == "expired":
            parts.append(
                f'"status" = {mark()} OR ("status" = {mark()} AND "expires_at" <= {mark()})'
            )
            params += ["expired", "pending", now]
        else:
            parts.append(f'"status" = {mark()}')
            params.append(value)
    return " OR ".join(f"({p})" for p in parts), params


def kept_total(rows: Sequence[asyncpg.Record], wanted: set[str]) -> int:
    """Usher's sum of kept counts, the overdue PENDING rows moved to EXPIRED."""
    by_status = {r["status"]: r["n"] for r in rows}
    lagging = by_status.pop("lagging", 0)
    if not wanted:
        return sum(by_status.values())
    total = sum(by_status.get(s, 0) for s in wanted)
    if "pending" in wanted and "expired" not in wanted:
        total -= lagging
    elif "expired" in wanted and "pending" not in wanted:
        total += lagging
    return int(total)


async def list_invitations(request: Request, variables: dict[str, Any]) -> Response:
    user = await caller(request)
    group = await managed_group(user, "org", "acme")
    now = datetime.now(UTC)
    condition, params = '"group_id" IN ($1)', [group["id"]]
    status = variables.get("status")
    if status:
        where, extra = status_where(status, 2, now)
        condition += f" AND ({where})"
        params += extra
    # Usher's `invitation_counts`: the kept counts, and the overdue PENDING rows apart
    # when the filter names exactly one of PENDING and EXPIRED.
    wanted = {s.lower() for s in status or ()}
    count_sql = 'SELECT "group_id", "status", "n" FROM "invitation_counts" WHERE "group_id" IN ($1)'
    count_params: list[Any] = [group["id"]]
    if ("pending" in wanted) != ("expired" in wanted):
        count_sql += (
            " UNION ALL SELECT group_id, 'lagging', COUNT(*) FROM invitations WHERE "
            '"group_id" IN ($2) AND status = $3 AND expires_at <= $4 GROUP BY group_id'
        )
        count_params += [group["id"], "pending", now]
    if variables.get("after"):
        moment, pk = read_cursor(variables["after"])
        n = len(params)
        condition += f' AND ("created_at", "id") < (${n + 1}, ${n + 2})'
        params += [moment, pk]
    params.append(51)
    rows = await pool.fetch(
        f'SELECT * FROM "invitations" WHERE {condition} ORDER BY "created_at" DESC, "id" DESC '
        f"LIMIT ${len(params)}",
        *params,
    )
    page = rows[:50]
    ids = [r["id"] for r in page]
    marks = ", ".join(f"${n}" for n in range(1, len(ids) + 1))
    inviter_ids = list(dict.fromkeys(r["inviter_id"] for r in page if r["inviter_id"]))
    count, roles, groups, users, trail = await asyncio.gather(
        pool.fetch(count_sql, *count_params),
        pool.fetch(
            'SELECT "role","invitation_id","joined_at","joined_via","permissions","group_id",'
            '"user_id","id" FROM "memberships" WHERE "user_id"=$1 AND "group_id" IN ($2)',
            user["id"],
            group["id"],
        ),
        groups_by_id([group["id"]]),
        users_by_id(inviter_ids),
        pool.fetch(
            'SELECT "actor_user_id","invitation_id","created_at","actor_api_key_id","detail",'
            f'"type","id" FROM "invitation_events" WHERE "invitation_id" IN ({marks}) '
            'ORDER BY "created_at" ASC',
            *ids,
        ),
    )
    manages = any(r["role"] in MANAGERS for r in roles)
    events: dict[uuid.UUID, list[asyncpg.Record]] = {i: [] for i in ids}
    for e in trail:
        events[e["invitation_id"]].append(e)
    edges = []
    for r in page:
        inviter = users.get(r["inviter_id"])
        node = {
            "id": str(r["id"]),
            "email": r["email"],
            "status": effective_status(r, now),
            "expiresAt": iso(r["expires_at"]),
            "inviteUrl": invite_url(r["id"], r["token_version"]) if manages else None,
            "group": {"name": groups[r["group_id"]]["name"]},
            "inviter": {"name": inviter["name"]} if inviter else None,
            "events": [
                {"type": e["type"].upper(), "createdAt": iso(e["created_at"])}
                for e in events[r["id"]][-EVENTS_SHOWN:]
            ]
            if manages
            else [],
        }
        edges.append({"cursor": cursor_of(r["created_at"], r["id"]), "node": node})
    return answer(
        {
            "invitationsByGroup": {
                "totalCount": kept_total(count, wanted),
                "edges": edges,
                "pageInfo": {
                    "hasNextPage": len(rows) > 50,
                    "endCursor": edges[-1]["cursor"] if edges else None,
                },
            }
        }
    )


async def preview(request: Request, variables: dict[str, Any]) -> Response:
    read = read_token(settings.secret_keys, variables["token"])
    if read is None:
        return answer({"invitationByToken": None})
    row = await pool.fetchrow(
        'SELECT * FROM "invitations" WHERE "id"=$1 AND "token_version"=$2 LIMIT $3', *read, 1
    )
    if row is None:
        return answer({"invitationByToken": None})
    group = (await groups_by_id([row["group_id"]]))[row["group_id"]]
    inviter = (
        (await users_by_id([row["inviter_id"]])).get(row["inviter_id"])
        if row["inviter_id"]
        else None
    )
    return answer(
        {
            "invitationByToken": {
                "status": effective_status(row, datetime.now(UTC)),
                "groupName": group["name"],
                "inviterName": inviter["name"] if inviter else None,
                "expiresAt": iso(row["expires_at"]),
                "targetType": row["target_type"].upper(),
            }
        }
    )


async def open_invitations(request: Request, variables: dict[str, Any]) -> Response:
    user = await caller(request)
    key = variables["email"].strip().lower()
    now = datetime.now(UTC)
    rows = await pool.fetch(
        'SELECT * FROM "invitations" WHERE "email_key"=$1 AND "status"=$2 AND "expires_at">$3 '
        'ORDER BY "created_at" DESC',
        key,
        "pending",
        now,
    )
    mine = [
        r["group_id"]
        for r in await pool.fetch(
            'SELECT "group_id" FROM "memberships" WHERE "user_id"=$1', user["id"]
        )
    ]
    exclude = 'NOT "id" = ANY($2)' if mine else "NOT 1=0"
    autojoin = await pool.fetch(
        'SELECT DISTINCT "name","autojoin_role","created_at","external_id","type","id" FROM '
        '"groups" WHERE "id" IN (SELECT "group_id" FROM "autojoin_domains" WHERE "domain"=$1 '
        f'AND NOT "verified_at" IS NULL) AND NOT "autojoin_role" IS NULL AND {exclude} '
        'ORDER BY "name" ASC',
        key.rsplit("@", 1)[1],
        *([mine] if mine else []),
    )
    rows = rows[:100]
    groups, users = await asyncio.gather(
        groups_by_id(list(dict.fromkeys(r["group_id"] for r in rows))),
        users_by_id(list(dict.fromkeys(r["inviter_id"] for r in rows if r["inviter_id"]))),
    )
    return answer(
        {
            "invitations": {
                "invitations": [
                    {
                        "id": str(r["id"]),
                        "status": effective_status(r, now),
                        "expiresAt": iso(r["expires_at"]),
                        "group": {"name": groups[r["group_id"]]["name"]},
                        "inviter": {"name": users[r["inviter_id"]]["name"]}
                        if r["inviter_id"] in users
                        else None,
                    }
                    for r in rows
                ],
                "autojoinGroups": [{"name": g["name"]} for g in autojoin[:100]],
            }
        }
    )


INSERT_INVITATION = (
    'INSERT INTO "invitations" ("id","target_type","email","email_key","open_key","first_name",'
    '"last_name","role","permissions","message","metadata","return_to","status","expires_at",'
    '"created_at","updated_at","accepted_at","send_email","delivery_status","delivery_error",'
    '"message_id","send_count","last_sent_at","reminder_sent_at","token_version","max_uses",'
    '"use_count","accepted_by_id","group_id","inviter_id","inviter_api_key_id") VALUES '
    "($1,'email',$2,$3,$3,$4,NULL,'member','[]',NULL,NULL,NULL,'pending',$5,$6,$6,NULL,true,"
    "'queued',NULL,NULL,0,NULL,NULL,1,NULL,0,NULL,$7,$8,NULL)"
)
INSERT_AUDIT = (
    'INSERT INTO "invitation_events" ("id","type","detail","created_at","actor_api_key_id",'
    '"actor_user_id","invitation_id") VALUES ($1,\'created\',NULL,$2,NULL,$3,$4)'
)
INSERT_FEED = (
    'INSERT INTO "events" ("id","type","data","created_at","group_id","invitation_id") '
    "VALUES ($1,'invitation.created',$2,$3,$4,$5)"
)
INSERT_OUTBOX = (
    'INSERT INTO "outbox" ("id","kind","token_version","created_at","enqueued_at","sent_at",'
    '"failed_at","attempts","last_error","endpoint_id","event_id","invitation_id") VALUES '
    "($1,'invitation',1,$2,NULL,NULL,NULL,0,NULL,NULL,NULL,$3)"
)


async def invite(request: Request, variables: dict[str, Any]) -> Response:
    user = await caller(request)
    spec = variables["input"]
    group = await managed_group(user, spec["groupType"], spec["groupId"])
    now = datetime.now(UTC)
    expires = now + timedelta(days=7)
    rows = [
        (uuid.uuid4(), i["email"].strip(), i["email"].strip().lower(), i.get("firstName"))
        for i in spec["invitees"]
    ]
    feed = [
        json.dumps(
            {
                "invitation": {
                    "id": str(r[0]),
                    "email": r[1],
                    "status": "PENDING",
                    "expiresAt": iso(expires),
                },
                "group": {"id": str(group["id"]), "name": group["name"]},
            }
        )
        for r in rows
    ]
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            INSERT_INVITATION, [(*r, expires, now, group["id"], user["id"]) for r in rows]
        )
        await conn.executemany(INSERT_AUDIT, [(uuid.uuid4(), now, user["id"], r[0]) for r in rows])
        await conn.executemany(
            INSERT_FEED,
            [(uuid.uuid4(), f, now, group["id"], r[0]) for r, f in zip(rows, feed, strict=True)],
        )
        await conn.executemany(INSERT_OUTBOX, [(uuid.uuid4(), now, r[0]) for r in rows])
    return answer(
        {
            "invite": {
                "invitations": [
                    {
                        "id": str(r[0]),
                        "email": r[1],
                        "status": "PENDING",
                        "inviteUrl": invite_url(r[0], 1),
                    }
                    for r in rows
                ],
                "errors": [],
            }
        }
    )


HANDLERS = {
    "ListInvitations": list_invitations,
    "Preview": preview,
    "OpenInvitations": open_invitations,
    "Invite": invite,
}


async def graphql(request: Request) -> Response:
    payload = json.loads(await request.body())
    handler = HANDLERS[payload["operationName"]]
    return await handler(request, payload.get("variables") or {})


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])], lifespan=lifespan)
