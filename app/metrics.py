"""Prometheus metrics, `usher_` prefixed, served at `GET /metrics` (DESIGN.md, "Operations").

Counters and histograms count what this process did; the outbox gauges are read from the
database at each scrape, so they are the same whichever process answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "usher_graphql_requests",
    "GraphQL operations answered, by operation name and outcome (ok, error).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "usher_graphql_request_seconds",
    "Time to answer a GraphQL operation, by operation name.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
EVENTS = Counter(
    "usher_events",
    "Events recorded (invitation.created, invitation.accepted, …), by type.",
    ["type"],
    registry=REGISTRY,
)
EMAILS = Counter(
    "usher_emails",
    "Emails handled by the delivery job, by kind and outcome (sent, failed, skipped, held).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "usher_webhook_deliveries",
    "Webhook delivery attempts, by outcome (delivered, failed, retried).",
    ["outcome"],
    registry=REGISTRY,
)

# Operation names come from clients: past this many distinct ones, the rest share a label,
# so a client cannot grow the metrics without bound.
MAX_OPERATIONS = 200
_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    """The label for an operation name: itself, `anonymous`, or `other` past the cap."""
    if not name:
        return "anonymous"
    if name in _operations:
        return name
    if len(_operations) >= MAX_OPERATIONS or len(name) > 64 or not name.isidentifier():
        return "other"
    _operations.add(name)
    return name


def count_events(types: Iterable[str]) -> None:
    """Count recorded events by type."""
    for type_ in types:
        EVENTS.labels(type=type_).inc()


class OutboxCollector(Collector):
    """The outbox backlog and the age of its oldest row, read at scrape time.

    `backlog` holds the last reading; `refresh` (awaited before each scrape) updates it,
    since the collector interface itself is synchronous.
    """

    def __init__(self) -> None:
        self.backlog: dict[str, int] = {}
        self.oldest: datetime | None = None

    async def refresh(self) -> None:
        """Read the backlog from the database: two statements on the `sent_at` index."""
        from tortoise.functions import Count, Min

        from app.models import OutboxMessage

        waiting = OutboxMessage.filter(sent_at__isnull=True, failed_at__isnull=True)
        rows = await waiting.annotate(n=Count("id")).group_by("kind").values_list("kind", "n")
        self.backlog = {str(getattr(kind, "value", kind)): int(n) for kind, n in rows}
        oldest: Any = await waiting.annotate(first=Min("created_at")).values_list(
            "first", flat=True
        )
        self.oldest = oldest[0] if oldest else None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily(
            "usher_outbox_backlog",
            "Outbox messages (emails, webhook deliveries) not yet sent or given up, by kind.",
            labels=["kind"],
        )
        for kind, n in sorted(self.backlog.items()):
            backlog.add_metric([kind], n)
        yield backlog
        age = GaugeMetricFamily(
            "usher_outbox_oldest_age_seconds",
            "Age of the oldest outbox message not yet sent or given up (0 when none).",
        )
        oldest = self.oldest
        age.add_metric([], (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
        yield age


OUTBOX = OutboxCollector()
REGISTRY.register(OUTBOX)
