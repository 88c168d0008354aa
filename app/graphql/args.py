"""Arguments shared by several fields, with their descriptions."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.models import InvitationStatus

GroupTypeArg = Annotated[str, strawberry.argument(description="The group's type, e.g. `org`.")]
GroupIdArg = Annotated[str, strawberry.argument(description="The group's external id.")]
InvitationIdArg = Annotated[strawberry.ID, strawberry.argument(description="The invitation's id.")]
FirstArg = Annotated[
    int | None, strawberry.argument(description="Page size, 1 to 100; null means 50.")
]
AfterArg = Annotated[
    str | None, strawberry.argument(description="`endCursor` of the previous page.")
]
StatusArg = Annotated[
    list[InvitationStatus] | None,
    strawberry.argument(description="Only invitations whose status, as read now, is one of these."),
]
