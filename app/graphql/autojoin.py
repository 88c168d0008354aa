"""Autojoin: a group's email domains, and joining by them."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.args import GroupIdArg, GroupTypeArg
from app.graphql.context import Info
from app.graphql.types import AcceptPayload, Group, GroupPayload
from app.graphql.types import Membership as MembershipType
from app.services import autojoin


@strawberry.type
class AutojoinMutation:
    @strawberry.mutation(
        description="Join a group whose autojoin domains include the signed-in user's "
        "verified email domain."
    )
    async def join_group(
        self,
        info: Info,
        group_type: GroupTypeArg,
        group_id: GroupIdArg,
    ) -> AcceptPayload:
        ctx = info.context
        m = await autojoin.join_group(
            ctx.settings, ctx.require_auth(), group_type=group_type, group_id=group_id
        )
        return AcceptPayload(memberships=[MembershipType.of(m)])

    @strawberry.mutation(
        description="Replace a group's autojoin domains (an empty list turns autojoin off). "
        'Webmail and disposable domains are refused, each as WEBMAIL_DOMAIN on ["domains", '
        '"<domain>"], and nothing changes. Domains that stay keep their verification. A '
        "domain is verified at once when an API key sets it, or a user whose verified email is "
        "at exactly that domain; any other offers autojoin only after `verifyAutojoinDomain`."
    )
    async def set_autojoin_domains(
        self,
        info: Info,
        group_type: GroupTypeArg,
        group_id: GroupIdArg,
        domains: Annotated[
            list[str],
            strawberry.argument(
                description="Email domains whose verified users may join (at most 100)."
            ),
        ],
        role: Annotated[
            str | None,
            strawberry.argument(
                description="Role to give those who join; default the current one, else the lowest."
            ),
        ] = None,
    ) -> GroupPayload:
        ctx = info.context
        m = await autojoin.set_autojoin_domains(
            ctx.settings,
            ctx.require_auth(),
            group_type=group_type,
            group_id=group_id,
            domains=domains,
            role=role,
        )
        return GroupPayload(group=Group.of(m))

    @strawberry.mutation(
        description="Verify one of a group's autojoin domains by its DNS record (see "
        "`Group.domains`): a TXT record `usher-verification=<token>` at `_usher.<domain>`. "
        "API keys, and users whose verified email is at exactly that domain, need no record. "
        'Errors: NOT_FOUND on ["domain"] if the domain is not listed; INVALID_INPUT on '
        '["domain"], saying what was looked up and found, if the record is not there.'
    )
    async def verify_autojoin_domain(
        self,
        info: Info,
        group_type: GroupTypeArg,
        group_id: GroupIdArg,
        domain: Annotated[
            str, strawberry.argument(description="One of the group's autojoin domains.")
        ],
    ) -> GroupPayload:
        ctx = info.context
        m = await autojoin.verify_autojoin_domain(
            ctx.settings,
            ctx.require_auth(),
            group_type=group_type,
            group_id=group_id,
            domain=domain,
        )
        return GroupPayload(group=Group.of(m))
