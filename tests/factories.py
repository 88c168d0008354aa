"""Rows for a test's setup, written directly: a group with its people costs a few inserts
instead of a GraphQL round trip per membership. What a test is about still goes through
the API."""

from __future__ import annotations

from app.models import Group, JoinMethod, Membership, User


async def user(sub: str, email: str | None = None, *, name: str | None = None) -> User:
    """The user a JWT for `sub` (with this verified `email` and `name`) will be."""
    found, _ = await User.get_or_create(
        external_id=sub,
        defaults={"email": email, "email_verified": email is not None, "name": name},
    )
    return found


async def group(external_id: str = "acme", name: str = "Acme", *, type: str = "org") -> Group:
    """A group with nobody in it."""
    return await Group.create(type=type, external_id=external_id, name=name)


async def member(
    of: Group, sub: str, email: str | None = None, role: str = "member", **user_fields: str
) -> Membership:
    """`sub` in `of` with `role` (an owner joins as the creator, others by invitation)."""
    via = JoinMethod.CREATOR if role == "owner" else JoinMethod.INVITATION
    joined = await user(sub, email, **user_fields)
    return await Membership.create(user=joined, group=of, role=role, joined_via=via)
