"""Who is calling: an API key for the host app, or a user with a JWT."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import jwt
from tortoise.expressions import Q

from app.config import Settings
from app.models import ApiKey, User
from app.services.text import is_clean

API_KEY_PREFIX = "usk_"
# How fresh an API key's `last_used_at` is kept: finer would cost a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The columns of `users` the claims are stored in.
_CLAIM_LENGTHS = {"sub": 255, "email": 320, "name": 255}
# How long a process trusts that a user's row still holds the claims it last wrote or
# read: a signed-in client makes many requests a minute with one JWT, and each would
# otherwise read the row again. Users are never deleted, and new claims (another name,
# a verified email) are never served from the cache: they are written at once.
KNOWN_USER_SECONDS = 30.0
KNOWN_USERS = 10_000


@dataclass(frozen=True)
class Claims:
    """What Usher reads from a user's JWT."""

    sub: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass
class Principal:
    """The caller of one request: an API key, a user, or nobody."""

    api_key: ApiKey | None = None
    claims: Claims | None = None
    user: User | None = None
    # The user's role in each group looked up so far (None: not a member), so the
    # policies read a membership once however many checks ask; see `forget_roles`.
    roles: dict[UUID, str | None] = field(default_factory=dict)

    @property
    def is_api_key(self) -> bool:
        """True for the host app's backend."""
        return self.api_key is not None

    @property
    def is_authenticated(self) -> bool:
        """True for an API key or a user."""
        return self.api_key is not None or self.claims is not None

    @property
    def verified_email(self) -> str | None:
        """The user's email, lower-cased, when the JWT says it is verified."""
        if self.claims and self.claims.email and self.claims.email_verified:
            return self.claims.email.lower()
        return None

    def forget_roles(self) -> None:
        """Read roles afresh from now on: after a change that may have touched them."""
        self.roles.clear()


class InvalidCredential(Exception):
    """The Authorization header carries something that is not a valid credential."""


def hash_api_key(key: str) -> str:
    """The stored form of an API key (keys are long and random, so SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(name: str) -> tuple[ApiKey, str]:
    """A new API key row and the key itself, which is shown once and never stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = await ApiKey.create(name=name, prefix=key[:12], key_hash=hash_api_key(key))
    return row, key


async def revoke_api_key(prefix: str) -> int:
    """Revoke the one active key with this prefix; returns how many active keys matched."""
    matches = ApiKey.filter(prefix=prefix[:12], revoked_at=None)
    count = await matches.count()
    if count == 1:
        await matches.update(revoked_at=datetime.now(UTC))
    return count


async def authenticate_api_key(key: str) -> ApiKey:
    """The API key row for `key`, or InvalidCredential; records when the key was last used."""
    row = await ApiKey.get_or_none(key_hash=hash_api_key(key), revoked_at=None)
    if row is None:
        raise InvalidCredential("Unknown or revoked API key.")
    await record_use(row)
    return row


async def record_use(row: ApiKey) -> bool:
    """Set `last_used_at` to now, at most once a minute per key; True if this call did.

    The row just read says whether a write is due, so most requests write nothing; the
    UPDATE checks again, so concurrent requests with one key write once between them.
    """
    now = datetime.now(UTC)
    stale = now - LAST_USED_RESOLUTION
    if row.last_used_at is not None and row.last_used_at >= stale:
        return False
    due = Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
    if not await ApiKey.filter(due, id=row.id).update(last_used_at=now):
        return False
    row.last_used_at = now
    return True


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True)


def decode_jwt(settings: Settings, token: str) -> Claims:
    """Verify a user's JWT and read its claims, or raise InvalidCredential."""
    options: Any = {"require": ["sub"], "verify_aud": bool(settings.jwt_audience)}
    try:
        key: Any
        if settings.jwt_jwks_url:
            key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
            algorithms = ["RS256", "ES256"]
        elif settings.jwt_public_key:
            key, algorithms = settings.jwt_public_key, ["RS256", "ES256"]
        else:
            key, algorithms = settings.jwt_secret, ["HS256"]
        data = jwt.decode(
            token, key, algorithms=algorithms, audience=settings.jwt_audience, options=options
        )
    except jwt.PyJWKClientError as exc:
        raise InvalidCredential(f"Cannot verify the token: {exc}") from None
    except jwt.PyJWTError as exc:
        raise InvalidCredential(f"Invalid token: {exc}") from None
    sub = _text_claim(data, "sub")
    # A blank subject names nobody: every such token would share one user.
    if sub is None or not sub.strip():
        raise InvalidCredential("Invalid token: 'sub' must be a non-blank string")
    return Claims(
        sub=sub,
        email=_text_claim(data, "email"),
        email_verified=data.get("email_verified") is True,
        name=_text_claim(data, "name"),
    )


def _text_claim(data: dict[str, Any], claim: str) -> str | None:
    """A text claim as Usher stores it on the user, None if absent or empty.

    The claims are written to the user row on every request, outside GraphQL's error
    handling: one the row cannot hold must fail as a credential, not as a server error.
    """
    value = data.get(claim)
    if value is None or value == "":
        return None
    limit = _CLAIM_LENGTHS[claim]
    if not isinstance(value, str) or len(value) > limit or not is_clean(value):
        raise InvalidCredential(
            f"Invalid token: '{claim}' must be a string of at most {limit} characters "
            "without control characters"
        )
    return value


async def authenticate(settings: Settings, authorization: str | None) -> Principal:
    """The principal for an `Authorization` header value (None: anonymous)."""
    if not authorization:
        return Principal()
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise InvalidCredential("Authorization must be 'Bearer <credential>'.")
    credential = credential.strip()
    if credential.startswith(API_KEY_PREFIX):
        return Principal(api_key=await authenticate_api_key(credential))
    if settings.jwt_jwks_url:
        # Fetching the key set is blocking I/O (cached after the first time).
        return Principal(claims=await asyncio.to_thread(decode_jwt, settings, credential))
    return Principal(claims=decode_jwt(settings, credential))


async def users_by_id(ids: Sequence[UUID]) -> list[User | None]:
    """Users by id, in the order asked (for a DataLoader)."""
    rows = {u.id: u for u in await User.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


class KnownUsers:
    """Users by the claims last synced, for KNOWN_USER_SECONDS (one per process).

    A request whose claims were synced a moment ago costs no statement; other claims,
    or the same after the time is up, are synced again.
    """

    def __init__(self, seconds: float = KNOWN_USER_SECONDS, size: int = KNOWN_USERS) -> None:
        self.seconds = seconds
        self.size = size
        self._users: OrderedDict[Claims, tuple[float, User]] = OrderedDict()

    def get(self, claims: Claims) -> User | None:
        """The user synced with exactly these claims lately, else None."""
        known = self._users.get(claims)
        if known is None:
            return None
        if time.monotonic() - known[0] >= self.seconds:
            del self._users[claims]
            return None
        return known[1]

    def add(self, claims: Claims, user: User) -> None:
        """Remember that `user`'s row holds `claims` now."""
        self._users[claims] = (time.monotonic(), user)
        self._users.move_to_end(claims)
        while len(self._users) > self.size:
            self._users.popitem(last=False)


async def sync_user(claims: Claims, known: KnownUsers | None = None) -> User:
    """The user row for these claims, created on first sight and kept up to date.

    One read when the row already holds the claims, none when `known` synced them
    lately; a write only for a new user or changed claims.
    """
    if known is not None and (user := known.get(claims)) is not None:
        return user
    seen = {"email": claims.email, "email_verified": claims.email_verified, "name": claims.name}
    user, created = await User.get_or_create(external_id=claims.sub, defaults=seen)
    if not created and any(getattr(user, k) != v for k, v in seen.items()):
        user.update_from_dict(seen)
        await user.save(update_fields=list(seen))
    if known is not None:
        known.add(claims, user)
    return user


def make_dev_jwt(
    settings: Settings,
    *,
    sub: str,
    email: str | None,
    name: str | None = None,
    verified: bool = True,
    hours: int = 24,
) -> str:
    """An HS256 JWT signed with USHER_JWT_SECRET, for development and tests."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "email_verified": verified,
        "iat": now,
        "exp": now + timedelta(hours=hours),
    }
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
