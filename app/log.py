"""Logging: no invitation token, JWT or API key reaches a log line, whatever logger writes it.

One filter, `RedactSecrets`, sits on every handler Usher configures (the root handler of
the `usher` command and uvicorn's handlers). A handler's filter sees every record the
handler writes, whichever logger made it, and rewrites the record before it is formatted:
its message (any object, e.g. the GraphQLError Strawberry logs, which quotes the query),
its arguments, its traceback and its stack.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError, Source, SourceLocation, get_location, print_source_location
from uvicorn.config import LOGGING_CONFIG

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# A token or key is cut at the first space or quote, not at the end of its alphabet, so a
# dot or any junk inside one (the spellings an attacker tries) hides nothing after it.
_RUN = r"""[^\s"']"""
SECRET = re.compile(
    rf"(?P<prefix>inv_|usk_){_RUN}+"
    # A JWT: three segments, the first a base64url JSON object ("eyJ" is `{"`).
    rf"|eyJ[^\s\"'.]*\.[^\s\"'.]*\.{_RUN}*"
)

# Attributes every record has; any other string attribute came in through `extra`.
_STANDARD_ATTRIBUTES = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}
)
_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """`text` with every token, JWT and API key replaced by its kind (`inv_…`, `eyJ…`, `usk_…`)."""
    return SECRET.sub(_placeholder, text)


def _placeholder(match: re.Match[str]) -> str:
    return (match.group("prefix") or "eyJ") + "…"


def _blank(text: str) -> str:
    """`redact`, padding each placeholder with spaces so every column stays where it was."""
    return SECRET.sub(lambda m: _placeholder(m).ljust(len(m.group())), text)


def graphql_error_text(error: GraphQLError) -> str:
    """`str(error)` with the secrets in the document it quotes blanked out.

    graphql-core cuts a long line of the document into 80-character pieces; a secret cut
    in two would escape the pattern, so the document is blanked before it is printed.
    """
    output = [error.message]
    for source, location in _quoted(error):
        blanked = Source(_blank(source.body), source.name, source.location_offset)
        output.append(print_source_location(blanked, location))
    return "\n\n".join(output)


def _quoted(error: GraphQLError) -> list[tuple[Source, SourceLocation]]:
    """The places in the document that `str(error)` prints, as graphql-core finds them."""
    if error.nodes:
        return [
            (node.loc.source, get_location(node.loc.source, node.loc.start))
            for node in error.nodes
            if node.loc
        ]
    if error.source and error.locations:
        return [(error.source, location) for location in error.locations]
    return []


class RedactedTraceback(Exception):
    """Stands in for an exception whose text held a secret; carries the redacted text."""


class RedactSecrets(logging.Filter):
    """Rewrites a record so that nothing shaped like a token, JWT or API key is left in it."""

    def filter(self, record: logging.LogRecord) -> bool:
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


def configure_logging() -> None:
    """Logging for the `usher` command: INFO and above to stderr, secrets redacted."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        redacting(handler)


def uvicorn_log_config() -> dict[str, Any]:
    """Uvicorn's logging configuration, with the root handler, every handler redacting.

    The root logger is configured here too: with `--workers` uvicorn configures logging
    afresh in each worker process, where `configure_logging` never ran.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": RedactSecrets}}
    config["formatters"]["root"] = {"format": LOG_FORMAT}
    config["handlers"]["root"] = {
        "class": "logging.StreamHandler",
        "formatter": "root",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["root"], "level": "INFO"}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    return config
