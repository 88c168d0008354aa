"""Logging: invitation tokens never reach a log line, not even in an access log's URL."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

TOKEN = re.compile(r"inv_[A-Za-z0-9_-]+")


class RedactTokens(logging.Filter):
    """Replaces anything shaped like an invitation token with `inv_…`."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Redact in place: formatters such as uvicorn's access log read `args` themselves.
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: _redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def _redact(text: str) -> str:
    return TOKEN.sub("inv_…", text) if "inv_" in text else text


def uvicorn_log_config() -> dict[str, Any]:
    """Uvicorn's logging configuration with tokens redacted from every handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": RedactTokens}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_tokens"]
    return config
