"""The schema: root Query and Mutation assembled from the per-area classes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from graphql import GraphQLError, NoSchemaIntrospectionCustomRule, VariableDefinitionNode
from strawberry.extensions import (
    AddValidationRules,
    FieldExtension,
    MaskErrors,
    SchemaExtension,
)
from strawberry.types import ExecutionContext
from strawberry.utils.logging import StrawberryLogger

from app.config import Settings, get_settings
from app.graphql.accept import AcceptMutation
from app.graphql.autojoin import AutojoinMutation
from app.graphql.email import EmailMutation, EmailQuery
from app.graphql.errors import DomainErrors, PublicError
from app.graphql.events import EventQuery
from app.graphql.groups import GroupMutation, GroupQuery
from app.graphql.invitations import InvitationMutation, InvitationQuery
from app.graphql.lifecycle import LifecycleMutation
from app.graphql.limits import DocumentCache, DocumentLimits, QueryTimeLimit, bound_validation
from app.graphql.scalars import SCALARS
from app.graphql.webhooks import WebhookMutation, WebhookQuery
from app.ops import RequestMetrics


@strawberry.type(description="Read groups, invitations and the signed-in user.")
class Query(GroupQuery, InvitationQuery, EventQuery, WebhookQuery, EmailQuery):
    pass


@strawberry.type(description="Change groups and invitations.")
class Mutation(
    GroupMutation,
    InvitationMutation,
    LifecycleMutation,
    AcceptMutation,
    AutojoinMutation,
    WebhookMutation,
    EmailMutation,
):
    pass


class FreshRoles(FieldExtension):
    """Each root field of a mutation reads the caller's roles as they are when it starts.

    A request reads the caller's role in a group once (`Principal.roles` and the
    `viewer_role` loader); the root fields of a mutation run one after another, and one
    may change what the next finds (an accepted invitation, a new group).
    """

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        info.context.forget_roles()
        return await next_(source, info, **kwargs)


# Every root field turns a service's DomainError into payload errors or a top-level
# error in one place (nested fields that can fail declare the extension themselves).
for _root in (Query, Mutation):
    for _field in _root.__strawberry_definition__.fields:  # type: ignore[union-attr]
        if _field.is_async:
            _field.extensions.append(DomainErrors())
for _field in Mutation.__strawberry_definition__.fields:  # type: ignore[attr-defined]
    if _field.is_async:
        _field.extensions.insert(0, FreshRoles())

log = logging.getLogger("usher.graphql")


def _should_mask(error: GraphQLError) -> bool:
    # Malformed requests (no original error), deliberate errors and variables the client
    # sent wrong are safe to show; anything else that was raised is a bug.
    original = error.original_error
    return (
        original is not None
        and not isinstance(original, PublicError)
        and not _is_bad_variable(error)
    )


def _is_bad_variable(error: GraphQLError) -> bool:
    """True for graphql-core's report of a variable value that failed coercion.

    It stands on the variable's definition, before any field ran, and wraps the
    GraphQLError its type raised; a type that failed with anything but a ValueError (a
    scalar's documented way to refuse a value) had a bug, which stays masked.
    """
    inner = error.original_error
    return (
        error.path is None
        and bool(error.nodes)
        and all(isinstance(node, VariableDefinitionNode) for node in error.nodes or ())
        and isinstance(inner, GraphQLError)
        and (inner.original_error is None or isinstance(inner.original_error, ValueError))
    )


class Schema(strawberry.Schema):
    """Strawberry's schema, logging errors by kind: what a client did wrong (a malformed or
    refused document, NOT_FOUND, FORBIDDEN, a bad variable) at INFO without a traceback, a
    bug at ERROR with its traceback."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if _should_mask(error):
                StrawberryLogger.error(error, execution_context)
            else:
                StrawberryLogger.logger.info(error)


def build_schema(settings: Settings | None = None) -> Schema:
    """The GraphQL schema: documents over the limits are refused before they run, queries
    stop after the time limit, introspection follows the settings, and in production
    unexpected errors are masked. Documents are parsed and validated once per text."""
    settings = settings or get_settings()
    bound_validation()
    max_cost, seconds = settings.max_query_cost, settings.query_timeout_seconds
    # Shared by the requests to this schema, whose validation rules never change.
    cache = DocumentCache()
    extensions: list[Callable[[], SchemaExtension]] = [
        RequestMetrics,
        lambda: DocumentLimits(max_cost=max_cost, cache=cache),
        lambda: QueryTimeLimit(seconds=seconds),
    ]
    if not settings.introspection_enabled:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
    if settings.is_production:
        extensions.append(lambda: MaskErrors(should_mask_error=_should_mask))
    return Schema(query=Query, mutation=Mutation, extensions=extensions, scalar_overrides=SCALARS)


# The schema `usher export-schema` prints; the app builds its own from its settings.
schema = build_schema(Settings(env="development"))
