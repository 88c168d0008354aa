"""Configuration, read once from the environment (see DESIGN.md, "configuration")."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "usher-development-secret-key-do-not-use-in-production"
DEV_JWT_SECRET = "usher-development-jwt-secret-do-not-use-in-production"


# Secrets shorter than this are refused in production (DESIGN.md, "Safe to expose").
MIN_SECRET_BYTES = 32
MIN_SECRET_SYMBOLS = 8


def weak_secret(secret: str) -> bool:
    """Too short once blanks are trimmed, or too few different characters to be random."""
    return len(secret.strip().encode()) < MIN_SECRET_BYTES or len(set(secret)) < MIN_SECRET_SYMBOLS


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower-cased, default port left out;
    None for anything else (no host, userinfo, a bad port, another scheme)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _https_origin(entry: str) -> str:
    """An entry of USHER_RETURN_TO_ORIGINS as an origin, or ValueError saying why not."""
    origin = origin_of(entry)
    if origin is None or not origin.startswith("https://") or urlsplit(entry).path not in ("", "/"):
        raise ValueError(f"USHER_RETURN_TO_ORIGINS: {entry!r} is not an https origin")
    return origin


def _nameserver(entry: str) -> tuple[str, int]:
    """`host:port` (an IP address; `[v6]:port`; the port defaults to 53), or ValueError."""
    host, port = entry, "53"
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":") if rest else port
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise ValueError(f"USHER_DNS_NAMESERVERS: {entry!r} is not an IP address and port")
    return host, number


class Settings(BaseSettings):
    """Every setting Usher reads; names match the environment variables in DESIGN.md."""

    model_config = SettingsConfigDict(env_prefix="USHER_", extra="ignore")

    database_url: str = Field(
        "sqlite://usher.db", validation_alias=AliasChoices("DATABASE_URL", "USHER_DATABASE_URL")
    )
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "USHER_REDIS_URL")
    )
    env: Literal["development", "production"] = "development"
    secret_key: str = DEV_SECRET_KEY
    jwt_secret: str = DEV_JWT_SECRET
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    accept_url: str = "http://localhost:8000/accept?token={token}"
    smtp_url: str | None = None
    smtp_timeout_seconds: float = 30.0
    # SMTP sessions kept open and reused across messages, per process: at most this many
    # at once; one idle this long is closed (servers drop idle sessions after a few
    # minutes); one is retired after this many messages (servers cap them per session).
    smtp_pool_size: int = 10
    smtp_idle_seconds: float = 30.0
    smtp_messages_per_connection: int = 100
    mail_from: str = "invitations@localhost"
    mail_dir: str = "./outbox"
    # Production refuses SQLite unless told it is one machine with one process.
    allow_sqlite: bool = False
    log_format: Literal["json", "text"] | None = None  # None: json in production
    templates_dir: str | None = None
    resend_cooldown_seconds: int = 60
    resend_daily_cap: int = 5
    reminder_hours_before_expiry: int = 24
    roles: str = "owner,admin,member"
    inviter_roles: str = "owner,admin"
    graphiql: bool | None = None
    # Origins of single-page apps allowed to call the API from a browser.
    cors_origins: str = ""
    # arq's queue; several Usher installations can share one Redis with distinct names.
    queue_name: str = "usher:queue"
    # Delivery tries before an email is marked FAILED, and the back-off between them:
    # the first retry waits `mail_retry_seconds`, each next one twice as long, up to the cap.
    mail_max_attempts: int = 8
    mail_retry_seconds: float = 30.0
    mail_retry_max_seconds: float = 3600.0
    # An outbox row handed to the queue this long ago and still unsent is taken for lost
    # (a Redis that restarted empty, a process killed between claim and enqueue) and
    # handed over again. A deferred retry counts from when it is due. Handing over twice
    # is safe: the job id is the row id, so arq refuses a second job while the first is
    # queued or running, and the job claims the row exactly (of two runs, one sends).
    relay_stale_seconds: float = 60.0
    # How often the worker's relay looks for due outbox rows (a divisor of 60).
    relay_interval_seconds: int = 10
    # A job running longer is cancelled; a job whose worker died (kill -9, a lost host)
    # is run again by another worker this long (plus 10 s) after it started.
    job_timeout_seconds: float = 90.0
    # Rows and invitations handled per batch by the relay and the sweeps.
    batch_size: int = 500
    # Quotas (DESIGN.md, "Safe to expose"): API keys are exempt from the per-inviter one.
    quota_invites_per_inviter_hour: int = 100
    quota_invites_per_group_day: int = 1000
    quota_mails_per_recipient_day: int = 10
    quota_pending_per_group: int = 5000
    # The event feed shows an event once it is this old, so a change committed a moment
    # after a reader's cursor passed its timestamp is still read.
    feed_delay_seconds: float = 2.0
    # How often the in-process runner sweeps when nothing wakes it.
    inline_interval_seconds: float = 30.0
    # Estimated nodes one operation may ask for (app/graphql/limits.py says how they are
    # counted): a page of 100 invitations with their group, inviter and events costs
    # about 2,400; a user's groups with 100 members each and those members' groups with
    # 100 members each cost over 400,000 and are refused.
    max_query_cost: int = 50_000
    # A query still running after this long is stopped; mutations run to their end.
    query_timeout_seconds: float = 10.0
    # Introspection in production; development always has it (GraphiQL needs it).
    introspection: bool = False
    # Webhook targets on loopback, private or link-local addresses in production (a
    # target inside the network Usher runs in is what an attacker with an API key would
    # aim at; an installation that posts to its own backend there opts in).
    webhook_allow_private: bool = False
    # One delivery attempt, from resolving the host to the end of the response's head.
    webhook_timeout_seconds: float = 10.0
    # Seconds to wait after each failed attempt; one attempt more than there are waits.
    # The default spreads 8 attempts over about 27 hours, so a receiver down for a day
    # still gets everything.
    webhook_retry_seconds: str = "5,300,1800,7200,18000,36000,36000"
    # While an older event about the same invitation is still on its way to an endpoint,
    # a newer one waits this long before it looks again (deliveries keep their order).
    webhook_order_wait_seconds: float = 5.0
    # An endpoint whose deliveries have failed for good for this long is disabled.
    webhook_disable_after_days: float = 5.0
    # Origins an absolute `returnTo` may point at (comma-separated https origins); empty:
    # the origin of USHER_ACCEPT_URL. Anything else could send a user who just accepted to
    # a page of an attacker's choosing.
    return_to_origins: str = ""
    # Where autojoin domain verification looks up TXT records: comma-separated `host:port`;
    # empty: the system's resolvers. Each lookup gives up after `dns_timeout_seconds`.
    dns_nameservers: str = ""
    dns_timeout_seconds: float = 5.0

    @property
    def secret_keys(self) -> list[str]:
        """Invitation-token secrets: the first signs, all verify."""
        return _split(self.secret_key)

    @property
    def allowed_origins(self) -> list[str]:
        """Browser origins allowed by CORS (`USHER_CORS_ORIGINS`, comma-separated)."""
        return _split(self.cors_origins)

    @property
    def allowed_return_origins(self) -> frozenset[str]:
        """Origins an absolute `returnTo` may have (ValueError if the setting is malformed)."""
        entries = _split(self.return_to_origins)
        if not entries:
            default = origin_of(self.accept_url)
            return frozenset([default] if default else [])
        return frozenset(_https_origin(entry) for entry in entries)

    @property
    def dns_servers(self) -> list[tuple[str, int]]:
        """Name servers for TXT lookups as (address, port); empty: the system's."""
        return [_nameserver(entry) for entry in _split(self.dns_nameservers)]

    @property
    def role_order(self) -> list[str]:
        """Configured roles, highest first."""
        return _split(self.roles)

    @property
    def roles_that_invite(self) -> list[str]:
        """Roles whose members may invite and manage invitations."""
        return _split(self.inviter_roles)

    @property
    def is_production(self) -> bool:
        """True when running with `USHER_ENV=production`."""
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        """GraphiQL is on in development and off in production unless asked for."""
        return (not self.is_production) if self.graphiql is None else self.graphiql

    @property
    def introspection_enabled(self) -> bool:
        """Introspection is on in development, and in production only when asked for."""
        return not self.is_production or self.introspection

    @property
    def webhook_retry_schedule(self) -> list[float]:
        """Seconds to wait after each failed webhook attempt (`USHER_WEBHOOK_RETRY_SECONDS`)."""
        return [float(part) for part in _split(self.webhook_retry_seconds)]

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(
            min(self.mail_retry_seconds * 2 ** max(attempt - 1, 0), self.mail_retry_max_seconds)
        )

    def _production_secret_problems(self) -> list[str]:
        """What is wrong with the secrets for production: development values, short keys."""
        problems = []
        if DEV_SECRET_KEY in self.secret_keys:
            problems.append("USHER_SECRET_KEY is the development value; set a secret of your own")
        elif any(weak_secret(key) for key in self.secret_keys):
            problems.append(
                f"USHER_SECRET_KEY has an entry shorter than {MIN_SECRET_BYTES} bytes "
                f"or of fewer than {MIN_SECRET_SYMBOLS} different characters"
            )
        if self.jwt_public_key or self.jwt_jwks_url:
            return problems  # the HS256 secret is not used
        if self.jwt_secret == DEV_JWT_SECRET:
            problems.append(
                "USHER_JWT_SECRET is the development value; set it, "
                "or USHER_JWT_PUBLIC_KEY / USHER_JWT_JWKS_URL"
            )
        elif weak_secret(self.jwt_secret):
            problems.append(
                f"USHER_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes "
                f"or of fewer than {MIN_SECRET_SYMBOLS} different characters"
            )
        return problems

    @property
    def effective_log_format(self) -> str:
        """`json` or `text`: USHER_LOG_FORMAT, else json in production."""
        return self.log_format or ("json" if self.is_production else "text")

    def check(self) -> None:
        """Refuse settings that must not reach production; raise ValueError with the reason."""
        problems = []
        scheme, separator, _ = self.database_url.partition("://")
        if scheme not in ("sqlite", "postgres", "asyncpg", "psycopg") or not separator:
            problems.append(
                f"DATABASE_URL must be sqlite://PATH or postgres://USER@HOST:PORT/NAME, "
                f"not {self.database_url[:40]!r}"
            )
        if not self.secret_keys:
            problems.append("USHER_SECRET_KEY is empty")
        if "{token}" not in self.accept_url:
            problems.append("USHER_ACCEPT_URL must contain {token}")
        if not self.role_order:
            problems.append("USHER_ROLES is empty")
        for name in (
            "quota_invites_per_inviter_hour",
            "quota_invites_per_group_day",
            "quota_mails_per_recipient_day",
            "quota_pending_per_group",
        ):
            if getattr(self, name) < 1:
                problems.append(f"USHER_{name.upper()} must be at least 1")
        unknown = [r for r in self.roles_that_invite if r not in self.role_order]
        if unknown:
            problems.append(f"USHER_INVITER_ROLES names unknown roles: {', '.join(unknown)}")
        if self.max_query_cost < 1:
            problems.append("USHER_MAX_QUERY_COST must be at least 1")
        if self.query_timeout_seconds <= 0:
            problems.append("USHER_QUERY_TIMEOUT_SECONDS must be positive")
        problems.extend(self._webhook_problems())
        problems.extend(self._smtp_problems())
        if self.dns_timeout_seconds <= 0:
            problems.append("USHER_DNS_TIMEOUT_SECONDS must be positive")
        for setting in ("allowed_return_origins", "dns_servers"):
            try:
                getattr(self, setting)
            except ValueError as exc:
                problems.append(str(exc))
        if self.is_production:
            problems += self._production_secret_problems()
            problems += self._production_deployment_problems()
        if problems:
            raise ValueError("Refusing to start: " + "; ".join(problems) + ".")

    def _production_deployment_problems(self) -> list[str]:
        """Defaults fit for a laptop that production must not start with unawares."""
        problems = []
        if self.database_url.startswith("sqlite") and not self.allow_sqlite:
            problems.append(
                "DATABASE_URL is SQLite; use PostgreSQL, or set USHER_ALLOW_SQLITE=true "
                "for one machine with one process"
            )
        host = (urlsplit(self.accept_url.replace("{token}", "t")).hostname or "").lower()
        if host in ("localhost", "127.0.0.1", "::1", "") or host.endswith(".localhost"):
            problems.append(
                "USHER_ACCEPT_URL points at this machine; set it to your app's invitation page"
            )
        if not self.smtp_url and "mail_dir" not in self.model_fields_set:
            problems.append(
                "USHER_SMTP_URL is not set, so mail would only be written to a folder; "
                "set it, or set USHER_MAIL_DIR to write mail to a folder on purpose"
            )
        return problems

    def _smtp_problems(self) -> list[str]:
        problems = []
        if self.smtp_timeout_seconds <= 0:
            problems.append("USHER_SMTP_TIMEOUT_SECONDS must be positive")
        if self.smtp_pool_size < 1:
            problems.append("USHER_SMTP_POOL_SIZE must be at least 1")
        if self.smtp_idle_seconds <= 0:
            problems.append("USHER_SMTP_IDLE_SECONDS must be positive")
        if self.smtp_messages_per_connection < 1:
            problems.append("USHER_SMTP_MESSAGES_PER_CONNECTION must be at least 1")
        return problems

    def _webhook_problems(self) -> list[str]:
        problems = []
        try:
            schedule = self.webhook_retry_schedule
        except ValueError:
            schedule = [-1.0]
        if any(not seconds > 0 for seconds in schedule):
            problems.append(
                "USHER_WEBHOOK_RETRY_SECONDS must be positive numbers of seconds, comma-separated"
            )
        if self.webhook_timeout_seconds <= 0:
            problems.append("USHER_WEBHOOK_TIMEOUT_SECONDS must be positive")
        if self.webhook_order_wait_seconds <= 0:
            problems.append("USHER_WEBHOOK_ORDER_WAIT_SECONDS must be positive")
        if self.webhook_disable_after_days < 0:
            problems.append("USHER_WEBHOOK_DISABLE_AFTER_DAYS must not be negative")
        return problems


def variable_of(field: str) -> str:
    """The environment variable that sets a settings field."""
    info = Settings.model_fields.get(field)
    alias = getattr(info, "validation_alias", None) if info else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return f"USHER_{field.upper()}"


def explain(error: ValidationError) -> str:
    """A settings validation error as one line naming the variables."""
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        given = item.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        parts.append(f"{variable_of(field)}: {item['msg'].lower()}{shown}")
    return "Refusing to start: " + "; ".join(parts) + "."


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()


def tortoise_config(database_url: str | None = None) -> dict[str, Any]:
    """Tortoise's configuration for `database_url` (default: the configured one).

    SQLite goes through `app.sqlite_client`, so that several processes can share the file.
    """
    url = database_url or get_settings().database_url
    connection: str | dict[str, Any] = url
    if url.startswith("sqlite:"):
        from app.sqlite_client import config

        connection = config(url)
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": ["app.models"],
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _tortoise_orm() -> dict[str, Any]:
    try:
        return tortoise_config()
    except ValidationError:
        # `tortoise makemigrations` reads this at import; `usher` explains the mistake.
        return tortoise_config(Settings.model_fields["database_url"].default)


TORTOISE_ORM = _tortoise_orm()
