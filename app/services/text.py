"""Text input: the characters Usher refuses before they reach the database.

PostgreSQL stores no NUL byte, in text or in jsonb, and neither database can encode a lone
surrogate, which JSON input can carry (`"\\ud800"`); the other control characters have no
place in names, roles or addresses shown in emails and pages. Text that is to be stored is
refused with INVALID_INPUT on its field; text that only looks something up finds nothing.
Free JSON is held to the same rule, and to finite numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from app.services.errors import DomainError, ErrorCode

# Unicode category Cc (C0, DEL, C1), and the surrogates, which are never text on their own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The same, minus tab, line feed and carriage return, which free text may hold.
_CONTROL_IN_PROSE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def is_clean(value: str, *, prose: bool = False) -> bool:
    """True if `value` holds no control character (with `prose`, tabs and line breaks pass)."""
    pattern = _CONTROL_IN_PROSE if prose else _CONTROL
    return pattern.search(value) is None


def check_text(
    value: str,
    field: Sequence[str],
    *,
    prose: bool = False,
    max_length: int | None = None,
) -> str:
    """`value`, or INVALID_INPUT on `field` if it holds a control character or is too long."""
    name = field[-1]
    if not is_clean(value, prose=prose):
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"{name} must not contain control characters.", field
        )
    if max_length is not None and len(value) > max_length:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"{name} must be at most {max_length} characters.", field
        )
    return value


def check_json(value: Any, field: Sequence[str]) -> None:
    """INVALID_INPUT on `field` if any string in a JSON value, key or value, at any depth,
    holds a control character, or any number is not finite."""
    pending = [value]
    # A loop, not recursion: the depth of the input is the client's choice.
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            check_text(item, field)
        elif isinstance(item, float) and not math.isfinite(item):
            # Python reads NaN, Infinity and 1e400 from JSON; jsonb and JSON itself have
            # no such numbers, and storing or sending them on would fail later.
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"{field[-1]} must not contain NaN or infinite numbers.",
                field,
            )
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
