"""Logging: no invitation token, JWT or API key reaches a log line, whatever logger writes it.

One filter, `RedactSecrets`, sits on every handler Usher configures (the root handler of
the `usher` command and uvicorn's handlers). A handler's filter sees every record the
handler writes, whichever logger made it, and rewrites the record before it is formatted:
its message (any object; the GraphQLError Strawberry logs is written without the excerpt
of the query its str() quotes), its arguments, its traceback and its stack.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import string
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError
from uvicorn.config import LOGGING_CONFIG

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# The id of the request being answered (X-Request-ID), on every record written for it.
request_id: ContextVar[str | None] = ContextVar("usher_request_id", default=None)

# A token or key is cut at the first space or quote, not at the end of its alphabet, so a
# dot or any junk inside one (the spellings an attacker tries) hides nothing after it.
# Inside quotes it runs to the closing quote (or the end of the line): a token pasted with
# a space in it, or a line break written as an escape, hides nothing after the break.
_RUN = r"""[^\s"']"""
SECRET = re.compile(
    r"""(?<=")(?P<double>inv_|usk_|eyJ)[^"\n]*"""
    r"""|(?<=')(?P<single>inv_|usk_|eyJ)[^'\n]*"""
    rf"|(?P<prefix>inv_|usk_){_RUN}+"
    # A JWT: three segments, the first a base64url JSON object ("eyJ" is `{"`).
    rf"|eyJ[^\s\"'.]*\.[^\s\"'.]*\.{_RUN}*"
)

# GraphQL and JSON can write any character as an escape, \u0069 or (GraphQL) \u{69}, and a
# secret written so still opens what it opens. Escapes of the characters secrets are made
# of are read back before matching; no other escape is, so that no line break or control
# character is ever written into a log line.
_ESCAPE = re.compile(r"\\u(?:\{(?P<braced>[0-9A-Fa-f]{1,6})\}|(?P<plain>[0-9A-Fa-f]{4}))")
_SECRET_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_.")

# Attributes every record has; any other string attribute came in through `extra`.
_STANDARD_ATTRIBUTES = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}
)
_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """`text` with every token, JWT and API key replaced by its kind (`inv_…`, `eyJ…`, `usk_…`),
    escapes read back; text without any is returned as it was."""
    decoded = _ESCAPE.sub(_unescape, text)
    redacted = SECRET.sub(_placeholder, decoded)
    if decoded != text and redacted == decoded:
        return text  # escapes, but no secret: leave them as written
    return redacted


def _unescape(match: re.Match[str]) -> str:
    code = int(match.group("braced") or match.group("plain"), 16)
    char = chr(code) if code <= 0x10FFFF else ""
    return char if char in _SECRET_ALPHABET else match.group()


def _placeholder(match: re.Match[str]) -> str:
    prefix = match.group("double") or match.group("single") or match.group("prefix")
    return (prefix or "eyJ") + "…"


def graphql_error_text(error: GraphQLError) -> str:
    """What is logged of a GraphQLError: its message, locations and path.

    Not the excerpt of the document that `str(error)` adds: the document is the client's
    text, where a secret can be spelled in more ways than a pattern can follow (split by a
    space or a line, in escapes); the locations say where to look.
    """
    where = [f"{at.line}:{at.column}" for at in error.locations or ()]
    notes = [f"at {', '.join(where)}"] if where else []
    if error.path:
        notes.append(f"path {'.'.join(map(str, error.path))}")
    return f"{error.message} ({'; '.join(notes)})" if notes else error.message


class RedactedTraceback(Exception):
    """Stands in for an exception whose text held a secret; carries the redacted text."""


class RedactSecrets(logging.Filter):
    """Rewrites a record so that nothing shaped like a token, JWT or API key is left in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        _redact_message(record)
        _redact_exception(record)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, redact(value))
        return True


def _redact_message(record: logging.LogRecord) -> None:
    if isinstance(record.msg, GraphQLError):
        # What Strawberry logs for every error: the error itself, quoting the query.
        record.msg = graphql_error_text(record.msg)
    rendered = _render(record)
    if rendered is not None and redact(rendered) == rendered:
        return
    # In place if that is enough: formatters such as uvicorn's access log read `args`.
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    record.args = _redact_args(record.args)
    again = _render(record)
    if again is not None and redact(again) == again:
        return
    # A message object, a non-string argument, a secret split between the format and its
    # arguments, or arguments that do not fit: only the rendered text can be cleaned.
    if rendered is None:
        rendered = f"{record.msg} % {record.args!r}"
    record.msg, record.args = redact(rendered), None


def _render(record: logging.LogRecord) -> str | None:
    try:
        return record.getMessage()
    except Exception:
        # logging would report the failure by printing msg and args as they are.
        return None


def _redact_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(redact(a) if isinstance(a, str) else a for a in args)
    if isinstance(args, Mapping):
        return {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
    return args


def _redact_exception(record: logging.LogRecord) -> None:
    # logging.Formatter prints `exc_text` when it is set, so filling it in here (redacted)
    # decides what the traceback looks like in every formatter that follows the standard.
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if not record.exc_text:
        return
    clean = redact(record.exc_text)
    if clean != record.exc_text:
        record.exc_text = clean
        if record.exc_info:
            # A formatter that formats `exc_info` itself gets the redacted text too.
            record.exc_info = (RedactedTraceback, RedactedTraceback(clean), None)


def redacting(handler: logging.Handler) -> logging.Handler:
    """`handler`, with the redaction filter attached (once)."""
    if not any(isinstance(f, RedactSecrets) for f in handler.filters):
        handler.addFilter(RedactSecrets())
    return handler


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, traceback, and
    whatever came in through `extra` (redacted, as the rest, by `RedactSecrets`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id  # type: ignore[attr-defined]
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and name != "request_id":
                entry[name] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for USHER_LOG_FORMAT (`json` or `text`)."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT)


def configure_logging(log_format: str = "text") -> None:
    """Logging for the `usher` command: INFO and above to stderr, secrets redacted."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        redacting(handler).setFormatter(formatter(log_format))


def uvicorn_log_config(log_format: str = "text") -> dict[str, Any]:
    """Uvicorn's logging configuration, with the root handler, every handler redacting.

    The root logger is configured here too: with `--workers` uvicorn configures logging
    afresh in each worker process, where `configure_logging` never ran.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": RedactSecrets}}
    config["formatters"]["root"] = {"format": LOG_FORMAT}
    if log_format == "json":
        for name in config["formatters"]:
            config["formatters"][name] = {"()": JsonFormatter}
    config["handlers"]["root"] = {
        "class": "logging.StreamHandler",
        "formatter": "root",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["root"], "level": "INFO"}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    return config
