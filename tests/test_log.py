import logging

from uvicorn.logging import AccessFormatter

from app.log import RedactTokens, uvicorn_log_config


def test_access_log_lines_lose_their_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/accept?token=inv_rr4zWpaOTq6GlFbJ-gsu_hyw", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /accept?token=inv_… HTTP/1.1" 200'
    # Uvicorn's own access formatter still reads the record.
    line = AccessFormatter("%(request_line)s %(status_code)s", use_colors=False).format(record)
    assert line == "GET /accept?token=inv_… HTTP/1.1 200 OK"


def test_every_uvicorn_handler_redacts() -> None:
    config = uvicorn_log_config()
    assert config["handlers"]
    assert all(h["filters"] == ["redact_tokens"] for h in config["handlers"].values())
