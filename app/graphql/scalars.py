"""Scalars and enums as clients see them: each names its format, each enum value says what it means.

Code generators read these (`@specifiedBy` to map DateTime to a date type, descriptions into
doc comments), as does GraphiQL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from enum import Enum
from typing import TypeVar

import strawberry
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

# Strawberry's DateTime, with the format it follows named for clients and code generators.
DATETIME = replace(
    DateTimeDefinition,
    description="A date and time with its UTC offset, as RFC 3339 (ISO 8601) writes it.",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339",
)
SCALARS: dict[object, ScalarDefinition] = {datetime: DATETIME}

E = TypeVar("E", bound=Enum)


def described_enum(
    cls: type[E], description: str, values: dict[E, str], name: str | None = None
) -> type[E]:
    """`cls` as a GraphQL enum whose every value carries its description from `values`."""
    if missing := [v.name for v in cls if v not in values]:
        raise ValueError(f"{cls.__name__}: no description for {', '.join(missing)}")
    strawberry.enum(cls, name=name, description=description)
    for value in cls.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values[cls[value.name]]
    return cls
