"""GraphQL object types: views over the stored models, loaded through DataLoaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Generic, TypeVar, cast
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from tortoise.models import Model

from app import models
from app.graphql.args import AfterArg, FirstArg, StatusArg
from app.graphql.context import Context, Info
from app.graphql.errors import DomainErrors, UserError
from app.graphql.limits import LIST_MAXIMUMS
from app.graphql.loaders import EVENTS_SHOWN, MEMBERSHIPS_SHOWN
from app.graphql.scalars import described_enum
from app.models import DeliveryStatus, EventType, InvitationStatus, TargetType
from app.services import autojoin
from app.services import groups as group_service
from app.services import invitations as invitation_service
from app.services.pages import Page, PageKey, Window
from app.services.policies import can_manage_invitation
from app.services.preview import Preview

# The stored enums are the GraphQL enums (GraphQL shows their names, e.g. PENDING).
described_enum(
    InvitationStatus,
    "Where an invitation is in its life.",
    {
        InvitationStatus.DRAFT: "Created, not sent yet; `sendInvitation` sends it.",
        InvitationStatus.PENDING: "Sent (or a live link), waiting for an answer.",
        InvitationStatus.ACCEPTED: "Accepted: the membership exists.",
        InvitationStatus.DECLINED: "Declined by the invitee.",
        InvitationStatus.EXPIRED: "Past `expiresAt` without an answer; `renewInvitation` "
        "opens it again.",
        InvitationStatus.REVOKED: "Withdrawn by the group; its link no longer works.",
    },
)
described_enum(
    TargetType,
    "EMAIL: one address. LINK: whoever holds the link.",
    {
        TargetType.EMAIL: "Sent to one email address; only that address may accept.",
        TargetType.LINK: "A shareable link; anyone signed in who holds it may accept.",
    },
)
described_enum(
    DeliveryStatus,
    "Where the email is.",
    {
        DeliveryStatus.NOT_SENT: "No email: a draft, a link, or nothing to send.",
        DeliveryStatus.QUEUED: "Waiting to be sent, or to be tried again.",
        DeliveryStatus.SENT: "The mail server accepted it.",
        DeliveryStatus.FAILED: "Given up on: the reason is in the invitation's events.",
        DeliveryStatus.DISABLED: "Not mailed: `sendEmail` was false, the host sends its own.",
    },
)
described_enum(
    EventType,
    "What happened to an invitation.",
    {
        EventType.CREATED: "The invitation was created.",
        EventType.SENT: "A draft was sent, or its email was delivered.",
        EventType.DELIVERY_FAILED: "An email could not be delivered.",
        EventType.RESENT: "Sent again, with a new link.",
        EventType.RENEWED: "Its expiry was moved later.",
        EventType.UPDATED: "Its terms were changed.",
        EventType.REVOKED: "Withdrawn by the group.",
        EventType.DECLINED: "Declined by the invitee.",
        EventType.ACCEPTED: "Accepted: a membership was made or raised.",
        EventType.EXPIRED: "Its time ran out.",
        EventType.REMINDED: "A reminder email was sent.",
    },
    name="InvitationEventType",
)

OPEN_SHOWN = LIST_MAXIMUMS["OpenInvitations.invitations"]
AUTOJOIN_SHOWN = LIST_MAXIMUMS["OpenInvitations.autojoinGroups"]

N = TypeVar("N")
M = TypeVar("M", bound=Model)


@strawberry.type(description="Where a page starts and ends, and whether more follow (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True if another page follows.")
    has_previous_page: bool = strawberry.field(
        description="True if this page was asked for `after` a cursor: items come before it."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first item; null for an empty page."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last item: pass it as `after` for the next page."
    )

    @classmethod
    def of(cls, page: Page[M]) -> PageInfo:
        """The paging information of a page."""
        return cls(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.rows[0][0] if page.rows else None,
            end_cursor=page.end_cursor,
        )


@strawberry.type(description="A node and its cursor.")
class Edge(Generic[N]):
    cursor: str = strawberry.field(description="Opaque position of this node.")
    node: N = strawberry.field(description="The item.")


@strawberry.type(description="A page of items (Relay connection); each list says its order.")
class Connection(Generic[N]):
    edges: list[Edge[N]] = strawberry.field(description="The items of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items match, across all pages.")
    async def total_count(self) -> int:
        # Counted only when asked for: a page by cursor rarely needs it.
        return await self.count()


async def _none() -> int:
    return 0


def connection_of(
    page: Page[M] | None, node: Callable[[M], N], count: Callable[[], Awaitable[int]]
) -> Connection[N]:
    """A connection over a page; None (the caller may not see these) gives an empty one."""
    if page is None:
        return Connection(edges=[], page_info=PageInfo.of(Page()), count=_none)
    return Connection(
        edges=[Edge(cursor=c, node=node(m)) for c, m in page.rows],
        page_info=PageInfo.of(page),
        count=count,
    )


@strawberry.type(description="A person known to Usher from their sign-in.")
class User:
    id: strawberry.ID = strawberry.field(description="Usher's id for the user.")
    external_id: str = strawberry.field(description="The `sub` of the user's JWT.")
    email: str | None = strawberry.field(description="Email from the latest JWT.")
    name: str | None = strawberry.field(description="Name from the latest JWT.")

    @classmethod
    def of(cls, m: models.User) -> User:
        """The GraphQL view of a stored user."""
        return cls(
            id=strawberry.ID(str(m.id)), external_id=m.external_id, email=m.email, name=m.name
        )


async def _user(info: Info, user_id: object) -> User | None:
    if user_id is None:
        return None
    m = await info.context.loaders.user.load(user_id)  # type: ignore[arg-type]
    return User.of(m) if m else None


async def _group(info: Info, group_id: object) -> Group:
    m = await info.context.loaders.group.load(group_id)  # type: ignore[arg-type]
    assert m is not None  # enforced by the foreign key
    return Group.of(m)


@strawberry.type(description="A user's place in a group.")
class Membership:
    model: strawberry.Private[models.Membership]
    id: strawberry.ID = strawberry.field(description="The membership's id.")
    role: str = strawberry.field(description="The member's role in the group.")
    permissions: list[str] = strawberry.field(description="Extra permissions (security profiles).")
    joined_at: datetime = strawberry.field(description="When the user joined.")
    metadata: JSON | None = strawberry.field(
        description="The accepted invitation's `metadata`; null for autojoin."
    )

    @classmethod
    def of(cls, m: models.Membership) -> Membership:
        """The GraphQL view of a stored membership."""
        return cls(
            model=m,
            id=strawberry.ID(str(m.id)),
            role=m.role,
            permissions=list(m.permissions or []),
            joined_at=m.joined_at,
            metadata=m.metadata,
        )

    @strawberry.field(description="The member.")
    async def user(self, info: Info) -> User:
        user = await _user(info, self.model.user_id)  # type: ignore[attr-defined]
        assert user is not None
        return user

    @strawberry.field(description="The group.")
    async def group(self, info: Info) -> Group:
        return await _group(info, self.model.group_id)  # type: ignore[attr-defined]


@strawberry.type(description="An email domain listed for autojoin, and whether it is verified.")
class GroupDomain:
    domain: str = strawberry.field(description="The domain, lower-case, e.g. `acme.com`.")
    verified: bool = strawberry.field(
        description="True once the group has shown it controls the domain; only verified "
        "domains offer autojoin."
    )
    verification_record: str | None = strawberry.field(
        description="For an unverified domain: the DNS record to publish, e.g. `_usher.acme.com "
        'TXT "usher-verification=…"`, before calling `verifyAutojoinDomain`; null once verified.'
    )

    @classmethod
    def of(cls, m: models.AutojoinDomain) -> GroupDomain:
        """The GraphQL view of a stored autojoin domain."""
        return cls(
            domain=m.domain,
            verified=m.verified_at is not None,
            verification_record=autojoin.verification_record(m),
        )


@strawberry.type(description="An organization, workspace, board…: what people are invited into.")
class Group:
    model: strawberry.Private[models.Group]
    id: strawberry.ID = strawberry.field(description="Usher's id for the group.")
    type: str = strawberry.field(description="The host app's kind of group, e.g. `workspace`.")
    external_id: str = strawberry.field(description="The host app's id for the group.")
    name: str = strawberry.field(description="Display name, shown in emails.")
    mail_from_name: str | None = strawberry.field(
        description="The sender's display name in the group's emails; null: Usher's own."
    )
    reply_to: str | None = strawberry.field(
        description="The Reply-To address of the group's emails; null: none."
    )
    locale: str | None = strawberry.field(
        description="The default language of the group's emails (a BCP 47 tag, e.g. `nl`); "
        "null: English."
    )

    @classmethod
    def of(cls, m: models.Group) -> Group:
        """The GraphQL view of a stored group."""
        return cls(
            model=m,
            id=strawberry.ID(str(m.id)),
            type=m.type,
            external_id=m.external_id,
            name=m.name,
            mail_from_name=m.mail_from_name,
            reply_to=m.reply_to,
            locale=m.locale,
        )

    @strawberry.field(
        description="Verified email domains whose verified users may join; empty: off. Shown "
        "to the group's members and API keys; empty for anyone else."
    )
    async def autojoin_domains(self, info: Info) -> list[str]:
        rows = await self._domains(info, verified_only=True)
        return [row.domain for row in rows]

    @strawberry.field(
        description="Every autojoin domain listed, verified or not, with the DNS record that "
        "verifies it. Shown to the group's members and API keys; empty for anyone else."
    )
    async def domains(self, info: Info) -> list[GroupDomain]:
        return [GroupDomain.of(row) for row in await self._domains(info)]

    async def _domains(
        self, info: Info, *, verified_only: bool = False
    ) -> list[models.AutojoinDomain]:
        loaders = info.context.loaders
        return await autojoin.visible_domains(
            info.context.principal,
            self.model.id,
            domains=loaders.autojoin_domains.load,
            role_in=loaders.role_in,
            verified_only=verified_only,
        )

    @strawberry.field(
        description="Role given to people who autojoin; for the group's members and API keys."
    )
    async def autojoin_role(self, info: Info) -> str | None:
        return await autojoin.visible_role(
            info.context.principal, self.model, role_in=info.context.loaders.role_in
        )

    @strawberry.field(description="The signed-in user's role in this group, if a member.")
    async def viewer_role(self, info: Info) -> str | None:
        return await info.context.loaders.role_in(self.model.id)

    @strawberry.field(
        description="The group's members, newest first; empty unless the caller is a member "
        "or an API key.",
        extensions=[DomainErrors()],
    )
    async def members(
        self, info: Info, first: FirstArg = 50, after: AfterArg = None
    ) -> Connection[Membership]:
        loaders = info.context.loaders
        key = PageKey(self.model.id, Window.of(first, after))
        page = await group_service.group_members(
            info.context.principal,
            key,
            pages=loaders.member_page.load,
            role_in=loaders.role_in,
        )
        return connection_of(page, Membership.of, partial(loaders.member_count.load, key.count_key))

    @strawberry.field(
        description="The group's invitations, newest first; empty unless the caller may manage "
        "them (API keys and the roles that may invite).",
        extensions=[DomainErrors()],
    )
    async def invitations(
        self,
        info: Info,
        status: StatusArg = None,
        first: FirstArg = 50,
        after: AfterArg = None,
    ) -> Connection[Invitation]:
        ctx = info.context
        key = PageKey(self.model.id, Window.of(first, after), frozenset(status or ()))
        page = await invitation_service.group_invitations(
            ctx.settings,
            ctx.principal,
            key,
            pages=ctx.loaders.invitation_page.load,
            role_in=ctx.loaders.role_in,
        )
        return invitation_connection(ctx, key, page)


def invitation_connection(
    ctx: Context, key: PageKey, page: Page[models.Invitation] | None
) -> Connection[Invitation]:
    """An InvitationConnection over a page, counting through the request's loader."""
    count = partial(ctx.loaders.invitation_count.load, key.count_key)
    return connection_of(page, Invitation.of, count)


@strawberry.type(description="An entry in an invitation's audit trail.")
class InvitationEvent:
    model: strawberry.Private[models.InvitationEvent]
    id: strawberry.ID = strawberry.field(description="The event's id.")
    type: EventType = strawberry.field(description="What happened.")
    detail: JSON | None = strawberry.field(description="Particulars, e.g. a delivery error.")
    created_at: datetime = strawberry.field(description="When it happened.")

    @strawberry.field(description="The user who did it; null for API keys and the system.")
    async def actor(self, info: Info) -> User | None:
        return await _user(info, self.model.actor_user_id)  # type: ignore[attr-defined]

    @strawberry.field(description="True if the host app's backend did it with an API key.")
    def by_api_key(self) -> bool:
        return self.model.actor_api_key_id is not None  # type: ignore[attr-defined]


@strawberry.type(description="An invitation into a group, by email or by link.")
class Invitation:
    model: strawberry.Private[models.Invitation]
    id: strawberry.ID = strawberry.field(description="The invitation's id.")
    target_type: TargetType = strawberry.field(description="By email or by link.")
    email: str | None = strawberry.field(description="The invitee's address (EMAIL only).")
    first_name: str | None = strawberry.field(description="The invitee's first name.")
    last_name: str | None = strawberry.field(description="The invitee's last name.")
    role: str = strawberry.field(description="The role the membership will get.")
    permissions: list[str] = strawberry.field(description="Extra permissions it will get.")
    message: str | None = strawberry.field(description="A personal note from the inviter.")
    metadata: JSON | None = strawberry.field(description="Free data carried to the membership.")
    return_to: str | None = strawberry.field(description="Where the app goes after accepting.")
    locale: str | None = strawberry.field(
        description="The language of its emails (BCP 47); null: the group's language."
    )
    subject: str | None = strawberry.field(
        description="The subject of its emails, replacing the template's; null: the template's."
    )
    expires_at: datetime = strawberry.field(description="When it stops being acceptable.")
    created_at: datetime = strawberry.field(description="When it was created.")
    accepted_at: datetime | None = strawberry.field(description="When it was accepted.")
    delivery_status: DeliveryStatus = strawberry.field(description="Where the email is.")
    delivery_error: str | None = strawberry.field(description="Why delivery failed, if it did.")
    send_count: int = strawberry.field(description="How many times the email was sent.")
    last_sent_at: datetime | None = strawberry.field(description="When it was last sent.")
    max_uses: int | None = strawberry.field(description="For links: how many may accept.")
    use_count: int = strawberry.field(description="How many have accepted.")
    # Read when the view is made, so it is a plain field (a resolver costs more per item).
    status: InvitationStatus = strawberry.field(
        description="The status now: EXPIRED as soon as `expiresAt` has passed."
    )

    @classmethod
    def of(cls, m: models.Invitation) -> Invitation:
        """The GraphQL view of a stored invitation."""
        return cls(
            model=m,
            id=strawberry.ID(str(m.id)),
            target_type=m.target_type,
            email=m.email,
            first_name=m.first_name,
            last_name=m.last_name,
            role=m.role,
            permissions=list(m.permissions or []),
            message=m.message,
            metadata=m.metadata,
            return_to=m.return_to,
            locale=m.locale,
            subject=m.subject,
            expires_at=m.expires_at,
            created_at=m.created_at,
            accepted_at=m.accepted_at,
            delivery_status=m.delivery_status,
            delivery_error=m.delivery_error,
            send_count=m.send_count,
            last_sent_at=m.last_sent_at,
            max_uses=m.max_uses,
            use_count=m.use_count,
            status=invitation_service.effective_status(m),
        )

    @strawberry.field(description="The group it invites into.")
    async def group(self, info: Info) -> Group:
        return await _group(info, self.model.group_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Who invited; null when the host app did with an API key.")
    async def inviter(self, info: Info) -> User | None:
        return await _user(info, self.model.inviter_id)  # type: ignore[attr-defined]

    @strawberry.field(description="Who accepted it (for links, the latest to accept).")
    async def accepted_by(self, info: Info) -> User | None:
        return await _user(info, self.model.accepted_by_id)  # type: ignore[attr-defined]

    async def _managed_by_caller(self, info: Info) -> bool:
        ctx = info.context
        return await can_manage_invitation(
            ctx.settings, ctx.principal, self.model, role_in=ctx.loaders.role_in
        )

    @strawberry.field(description="The link that opens it; only for those who may manage it.")
    async def invite_url(self, info: Info) -> str | None:
        if not await self._managed_by_caller(info):
            return None
        return invitation_service.invite_url(info.context.settings, self.model)

    @strawberry.field(
        description="The Message-ID of the last email sent for it; only for those who may "
        "manage it."
    )
    async def message_id(self, info: Info) -> str | None:
        if self.model.message_id is None or not await self._managed_by_caller(info):
            return None
        return self.model.message_id

    @strawberry.field(
        description=f"The audit trail: its {EVENTS_SHOWN} most recent events at most, oldest "
        "first. Only for those who may manage the invitation, empty for anyone else (its "
        "actors are other members of the group)."
    )
    async def events(self, info: Info) -> list[InvitationEvent]:
        if not await self._managed_by_caller(info):
            return []
        rows = await info.context.loaders.events.load(self.model.id)
        return [
            InvitationEvent(
                model=e,
                id=strawberry.ID(str(e.id)),
                type=e.type,
                detail=cast(JSON, e.detail),
                created_at=e.created_at,
            )
            for e in rows
        ]


@strawberry.type(description="What anyone holding a token may see of its invitation.")
class InvitationPreview:
    status: InvitationStatus = strawberry.field(description="The status now.")
    group_name: str = strawberry.field(description="The group's name.")
    inviter_name: str | None = strawberry.field(
        description="Who invited, as the emails name them: their name, else their address; "
        "null when the host app invited with an API key and named nobody."
    )
    expires_at: datetime = strawberry.field(description="When it expires.")
    target_type: TargetType = strawberry.field(description="By email or by link.")

    @classmethod
    def of(cls, found: Preview) -> InvitationPreview:
        """The GraphQL view of a preview."""
        return cls(
            status=found.status,
            group_name=found.group_name,
            inviter_name=found.inviter_name,
            expires_at=found.expires_at,
            target_type=found.target_type,
        )


@strawberry.type(description="The signed-in user and where they belong.")
class Viewer:
    user_id: strawberry.Private[UUID]
    user: User = strawberry.field(description="The signed-in user.")

    @strawberry.field(
        description=f"The user's groups and roles: the {MEMBERSHIPS_SHOWN} most recent "
        "memberships at most, newest first."
    )
    async def memberships(self, info: Info) -> list[Membership]:
        rows = await info.context.loaders.memberships.load(self.user_id)
        return [Membership.of(m) for m in rows]


@strawberry.type(description="Open invitations for an address, and groups it may autojoin.")
class OpenInvitations:
    invitations: list[Invitation] = strawberry.field(
        description=f"PENDING, unexpired invitations, newest first: at most {OPEN_SHOWN}."
    )
    autojoin_groups: list[Group] = strawberry.field(
        description="Groups the address's domain may join without an invitation, by name: "
        f"at most {AUTOJOIN_SHOWN}."
    )


# Every field of a payload has a default, so the error mapper (`DomainErrors`) can make
# one from its errors alone.


@strawberry.type(description="The result of a mutation on a group.")
class GroupPayload:
    group: Group | None = strawberry.field(
        default=None, description="The group, if the mutation succeeded."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Problems the user can act on."
    )


@strawberry.type(description="The result of a mutation on one invitation.")
class InvitationPayload:
    invitation: Invitation | None = strawberry.field(
        default=None, description="The invitation after the change."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Problems the user can act on."
    )


@strawberry.type(description="The result of `invite`: the invitations made and per-item errors.")
class InvitePayload:
    invitations: list[Invitation] = strawberry.field(
        default_factory=list, description="The invitations created."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description='Problems, each naming its item, e.g. ["invitees", "3", "email"].',
    )


@strawberry.type(description="The result of accepting or joining.")
class AcceptPayload:
    invitations: list[Invitation] = strawberry.field(
        default_factory=list, description="The invitations accepted."
    )
    memberships: list[Membership] = strawberry.field(
        default_factory=list, description="The memberships now held."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Problems, each naming its item."
    )
