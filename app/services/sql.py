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


def text_in(model: type[Model], column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """`"column" IN (…values)` for a text column, and its parameters.

    On PostgreSQL one array parameter: a statement prepared with a hundred separate ones
    gets, after a few runs, a generic plan that does not know how few rows they match and
    may scan all of a large group's rows instead of probing the index for each value.
    """
    if is_postgres(model):
        return f'"{column}" = ANY(CAST(? AS TEXT[]))', [list(values)]
    return f'"{column}" IN ({marks(len(values))})', list(values)


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
