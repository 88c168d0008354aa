"""Hand-written SQL, for the few statements the ORM cannot say in one go.

Statements are written with `?` placeholders and numbered for PostgreSQL here; parameters
are converted as the model's fields store them (`param`). They run on the connection of the
current transaction, like the ORM's own queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model


def connection(model: type[Model]) -> BaseDBAsyncClient:
    """The connection `model` is stored on, inside the current transaction if there is one."""
    return model._meta.db


def is_postgres(model: type[Model]) -> bool:
    """True if `model` is stored in PostgreSQL (else SQLite)."""
    return connection(model).capabilities.dialect == "postgres"


def param(model: type[Model], name: str, value: Any) -> Any:
    """A parameter as the model's field `name` stores it (UUIDs as text on SQLite, …)."""
    return model._meta.fields_map[name].to_db_value(value, model)


def marks(count: int) -> str:
    """`?, ?, …`: `count` placeholders."""
    return ", ".join("?" * count)


def numbered(model: type[Model], statement: str) -> str:
    """`?` placeholders as the database wants them ($1, $2… on PostgreSQL).

    A statement passed here must use `?` for nothing else (no jsonb `?` operator).
    """
    if not is_postgres(model):
        return statement
    parts = statement.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


async def fetch(model: type[Model], statement: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    """Run `statement` (with `?` placeholders) and return its rows."""
    return await connection(model).execute_query_dict(numbered(model, statement), list(params))
