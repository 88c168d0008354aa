"""Groups: `createGroup`, `group` and `viewer`."""

from __future__ import annotations

from typing import Annotated

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
