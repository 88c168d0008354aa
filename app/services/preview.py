"""The public preview of the invitation a token opens (`invitationByToken`).

It answers the signup page of anyone holding a link, so it is the busiest read and the
one open to everybody: the token is checked without the database, and what the page
shows is read in one statement, the invitation joined with its group and its inviter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.config import Settings
from app.models import Invitation, InvitationStatus, TargetType
from app.services.common import shown_name, utcnow
from app.services.pages import db_value
from app.services.tokens import read_token

_COLUMNS = (
    'SELECT i."status", i."expires_at", i."target_type", g."name" AS group_name, '
    'u."name" AS inviter_name, u."email" AS inviter_email '
    'FROM "invitations" i JOIN "groups" g ON g."id" = i."group_id" '
    'LEFT JOIN "users" u ON u."id" = i."inviter_id" '
)
# Placeholders as each database's driver wants them.
_SQL = {
    "postgres": _COLUMNS + 'WHERE i."id" = $1 AND i."token_version" = $2',
    "sqlite": _COLUMNS + 'WHERE i."id" = ? AND i."token_version" = ?',
}


@dataclass(frozen=True)
class Preview:
    """What anyone holding a genuine, current token may see of its invitation."""

    status: InvitationStatus
    group_name: str
    inviter_name: str | None
    expires_at: datetime
    target_type: TargetType


async def preview(settings: Settings, token: str) -> Preview | None:
    """The preview of the invitation `token` opens; None for any token that is not
    genuine and current (unknown, forged, or replaced by a resend)."""
    read = read_token(settings.secret_keys, token)
    if read is None:
        return None
    invitation_id, version = read
    db = Invitation._meta.db
    sql = _SQL[db.capabilities.dialect]
    rows = await db.execute_query_dict(sql, [db_value(Invitation, "id", invitation_id), version])
    if not rows:
        return None
    row = rows[0]
    expires_at: datetime = _stored("expires_at", row)
    return Preview(
        status=status_at(_stored("status", row), expires_at),
        group_name=row["group_name"],
        inviter_name=shown_name(row["inviter_name"], row["inviter_email"]),
        expires_at=expires_at,
        target_type=_stored("target_type", row),
    )


def status_at(stored: InvitationStatus, expires_at: datetime) -> InvitationStatus:
    """The status a reader must see: PENDING past `expiresAt` is EXPIRED.

    `invitations.effective_status` for a row read without its model; a test holds the
    two to the same answers.
    """
    if stored == InvitationStatus.PENDING and expires_at <= utcnow():
        return InvitationStatus.EXPIRED
    return stored


def _stored(name: str, row: dict[str, Any]) -> Any:
    """A column of `row` as the model's field reads it (text times on SQLite, enums)."""
    return Invitation._meta.fields_map[name].to_python_value(row[name])
