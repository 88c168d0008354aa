"""Groups: `createGroup`, `group` and `viewer`."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from app.graphql.args import GroupIdArg, GroupTypeArg
from app.graphql.context import Info
from app.graphql.types import Group, GroupPayload, User, Viewer
from app.services import groups as group_service


@strawberry.input(description="A new group.")
class CreateGroupInput:
    type: str = strawberry.field(description="The host app's kind of group, e.g. `workspace`.")
    external_id: str = strawberry.field(description="The host app's id for it.")
    name: str = strawberry.field(description="Display name, shown in emails.")


@strawberry.input(
    description="Changes to a group. A field left out stays as it is; null clears "
    "`mailFromName`, `replyTo` and `locale`."
)
class UpdateGroupInput:
    group_type: str = strawberry.field(description="The group's type, e.g. `org`.")
    group_id: str = strawberry.field(description="The group's external id.")
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Display name, shown in emails."
    )
    mail_from_name: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The sender's display name in the group's emails (at most 100 "
        "characters, one line); the address stays Usher's `USHER_MAIL_FROM`.",
    )
    reply_to: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Where replies to the group's emails go (Reply-To).",
    )
    locale: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The default language of the group's emails, a BCP 47 tag (`en`, `nl`, "
        "`de`, `de-AT`…); an invitation's own `locale` comes first.",
    )

    def changes(self) -> dict[str, Any]:
        """The fields the client gave, by model field name."""
        return {
            name: value
            for name in group_service.UPDATABLE
            if (value := getattr(self, name)) is not strawberry.UNSET
        }


@strawberry.type
class GroupQuery:
    @strawberry.field(description="The signed-in user and their memberships; null for API keys.")
    async def viewer(self, info: Info) -> Viewer | None:
        user = info.context.require_auth().user
        if user is None:
            return None
        return Viewer(user_id=user.id, user=User.of(user))

    @strawberry.field(description="A group, for its members and API keys.")
    async def group(
        self, info: Info, group_type: GroupTypeArg, group_id: GroupIdArg
    ) -> Group | None:
        principal = info.context.require_auth()
        m = await group_service.visible_group(principal, group_type, group_id)
        return Group.of(m) if m else None


@strawberry.type
class GroupMutation:
    @strawberry.mutation(description="Create a group; a user who creates one becomes its owner.")
    async def create_group(
        self,
        info: Info,
        input: Annotated[CreateGroupInput, strawberry.argument(description="The new group.")],
    ) -> GroupPayload:
        ctx = info.context
        m = await group_service.create_group(
            ctx.settings,
            ctx.require_auth(),
            type=input.type,
            external_id=input.external_id,
            name=input.name,
        )
        return GroupPayload(group=Group.of(m))

    @strawberry.mutation(
        description="Change a group's name and the branding of its emails (sender name, "
        "reply-to, language); for API keys and the roles that may invite."
    )
    async def update_group(
        self,
        info: Info,
        input: Annotated[UpdateGroupInput, strawberry.argument(description="The changes.")],
    ) -> GroupPayload:
        ctx = info.context
        m = await group_service.update_group(
            ctx.settings,
            ctx.require_auth(),
            group_type=input.group_type,
            group_id=input.group_id,
            changes=input.changes(),
        )
        return GroupPayload(group=Group.of(m))
