"""Usher against its floor, at 10k, 100k and 1M invitations: `make bench` (BENCHMARKS.md).

For each size, on a PostgreSQL database seeded by bench/seed.py, it starts `usher serve`
(uvicorn, one process, a private redis-server as its queue) and the floor app
(bench/floor.py, same uvicorn) and drives them in turns, round after round:
- latency: wrk with one connection, per operation (first page, a deep page, a status
  filter, `invitations(EMAIL)`, the preview): p50 and p99;
- throughput (largest size): wrk with 8 connections, the first page and the preview: req/s;
- invite (largest size): 100 invitees in one call, and 1000 in 10 calls of 100, over HTTP;
- sweep (largest size): 100k overdue invitations expired by Usher's `sweep_expired`, called
  as the worker calls it, against one UPDATE … RETURNING with its inserts; the preview's p99
  meanwhile against idle;
- email (largest size): 1000 queued emails delivered by `usher worker` (arq on the private
  Redis) and by the in-process runner, against a bare aiosmtplib loop at the same
  concurrency, all to an SMTP sink in a process of its own;
- memory: the peak RSS (VmHWM) of the `usher serve` process.

Options: --sizes 10k,100k,1m --only latency,throughput,invite,sweep,email --rounds 3
--duration 10 (seconds per throughput run) --latency-duration 4; the sweep and the
emails run at most 2 rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import httpx

from app.config import Settings
from app.services.pages import cursor_of
from bench import ops, procs, seed

PHASES = ("latency", "throughput", "invite", "sweep", "email")
LATENCY_OPS = ("first page", "deep page", "status filter", "invitations(EMAIL)", "preview")
SWEEP_SIZE = 100_000
MAILS = 1000
WORKER_CONCURRENCY = 20  # arq's max_jobs in app/jobs/worker.py
INLINE_CONCURRENCY = 10  # CONCURRENT_SENDS in app/jobs/inline.py
THROUGHPUT_CONNECTIONS = 8
# The sweep and the emails take half a minute a round: at most this many rounds of them.
SLOW_ROUNDS = 2


@dataclass
class Results:
    """Every figure measured, by measure, size and side (usher or floor), one per round."""

    values: dict[str, dict[str, dict[str, list[float]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )

    def add(self, measure: str, size: str, side: str, value: float) -> None:
        self.values[measure][size][side].append(value)

    def get(self, measure: str, size: str, side: str) -> list[float]:
        return self.values.get(measure, {}).get(size, {}).get(side, [])


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(xs))}-{fmt.format(max(xs))}" if xs else "-"


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    """One run: its options, its results, and the processes it shares across sizes."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results = Results()
        self.settings = Settings()
        self.owner = ops.owner_jwt(self.settings)
        self.ben = ops.invitee_jwt(self.settings)
        self.tag = uuid.uuid4().hex[:6]
        self.rss: dict[str, float] = {}
        self.failures: list[str] = []

    def bodies(self, name: str, lines: list[str]) -> Path:
        path = procs.LOGS / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return path

    # --- one size -------------------------------------------------------------------------

    async def run_size(self, db: seed.SizedDb, redis: procs.Proc, largest: bool) -> None:
        label = seed.size_label(db.n)
        say(f"== {label}: {db.name}")
        await seed.ensure(db)
        conn = await asyncpg.connect(seed.asyncpg_dsn(db.url))
        try:
            await purge(conn)
            env = procs.server_env(db.url, f"redis://127.0.0.1:{redis.port}/0")
            usher = procs.start_usher(env)
            floor = procs.start_floor(env)
            try:
                await self.sized(db, label, conn, usher, floor, redis, largest)
            finally:
                self.rss[f"{label} usher"] = usher.rss_mib("VmHWM")
                self.rss[f"{label} floor"] = floor.rss_mib("VmHWM")
                usher.stop()
                floor.stop()
        finally:
            await conn.close()

    async def sized(
        self,
        db: seed.SizedDb,
        label: str,
        conn: asyncpg.Connection,
        usher: procs.Proc,
        floor: procs.Proc,
        redis: procs.Proc,
        largest: bool,
    ) -> None:
        only = self.args.only
        cases = await self.cases(db, conn)
        await self.check(usher, floor, cases)
        phases: list[tuple[str, bool, Callable[[], Awaitable[None]]]] = [
            ("latency", True, lambda: self.latency(label, usher, floor, cases)),
            ("throughput", largest, lambda: self.throughput(label, usher, floor, cases)),
            ("invite", largest, lambda: self.invite(label, conn, usher, floor)),
            ("sweep", largest, lambda: self.sweep(label, db, conn, usher, cases)),
            ("email", largest, lambda: self.email(label, db, conn, redis)),
        ]
        for name, wanted, phase in phases:
            if not wanted or name not in only:
                continue
            try:
                await phase()
            except Exception as exc:
                # One phase failing leaves the others' figures standing.
                self.failures.append(f"{label} {name}: {exc!r}")
                say(f"  !! {name} failed: {exc!r}")
                await purge(conn)

    async def cases(
        self, db: seed.SizedDb, conn: asyncpg.Connection
    ) -> dict[str, tuple[Path, str | None]]:
        """Bodies files and credentials of the read operations."""
        acme = seed.group_id("acme")
        total = await conn.fetchval("SELECT count(*) FROM invitations WHERE group_id = $1", acme)
        row = await conn.fetchrow(
            "SELECT created_at, id FROM invitations WHERE group_id = $1 "
            "ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
            acme,
            total * 9 // 10,
        )
        deep = cursor_of(row["created_at"], row["id"])
        rng = random.Random(db.n)
        tokens = [ops.token_of(self.settings, rng.randrange(db.n)) for _ in range(1000)]
        return {
            "first page": (self.bodies("first", [ops.list_body()]), self.owner),
            "deep page": (self.bodies("deep", [ops.list_body(after=deep)]), self.owner),
            "status filter": (
                self.bodies("status", [ops.list_body(status=["PENDING"])]),
                self.owner,
            ),
            "invitations(EMAIL)": (self.bodies("open", [ops.open_body()]), self.ben),
            "preview": (self.bodies("preview", [ops.preview_body(t) for t in tokens]), None),
        }

    async def check(
        self, usher: procs.Proc, floor: procs.Proc, cases: dict[str, tuple[Path, str | None]]
    ) -> None:
        """Both answer each read with the same JSON (and no errors), before timing anything."""
        async with httpx.AsyncClient(timeout=60) as http:
            for name, (path, jwt) in cases.items():
                body = path.read_text().splitlines()[0]
                headers = {"content-type": "application/json"}
                if jwt:
                    headers["authorization"] = f"Bearer {jwt}"
                a = (await http.post(usher.url, content=body, headers=headers)).json()
                b = (await http.post(floor.url, content=body, headers=headers)).json()
                if "errors" in a or a != b:
                    say(f"  !! {name}: Usher and the floor answer differently")
                    (procs.LOGS / f"diff-{name}.json").write_text(json.dumps([a, b], indent=1))

    async def latency(
        self,
        label: str,
        usher: procs.Proc,
        floor: procs.Proc,
        cases: dict[str, tuple[Path, str | None]],
    ) -> None:
        seconds = self.args.latency_duration
        for path, jwt in cases.values():  # warm both
            for proc in (usher, floor):
                await asyncio.to_thread(
                    procs.wrk, proc.url, path, jwt=jwt, seconds=1, connections=1
                )
        for r in range(self.args.rounds):
            for name, (path, jwt) in cases.items():
                for side, proc in sides(usher, floor, r):
                    out = await asyncio.to_thread(
                        procs.wrk, proc.url, path, jwt=jwt, seconds=seconds, connections=1
                    )
                    assert out["errors"] == 0, (name, side, out)
                    self.results.add(f"p99 {name}", label, side, out["p99"])
                    self.results.add(f"p50 {name}", label, side, out["p50"])
            say(
                f"  latency round {r + 1}: "
                + ", ".join(
                    f"{n} {median(self.results.get(f'p99 {n}', label, 'usher')):.1f}/"
                    f"{median(self.results.get(f'p99 {n}', label, 'floor')):.1f} ms"
                    for n in cases
                )
            )

    async def throughput(
        self,
        label: str,
        usher: procs.Proc,
        floor: procs.Proc,
        cases: dict[str, tuple[Path, str | None]],
    ) -> None:
        for r in range(self.args.rounds):
            for name in ("first page", "preview"):
                path, jwt = cases[name]
                for side, proc in sides(usher, floor, r):
                    out = await asyncio.to_thread(
                        procs.wrk,
                        proc.url,
                        path,
                        jwt=jwt,
                        seconds=self.args.duration,
                        connections=THROUGHPUT_CONNECTIONS,
                    )
                    assert out["errors"] == 0, (name, side, out)
                    self.results.add(f"rps {name}", label, side, out["rps"])
                    if side == "usher":
                        self.results.add("rss under load", label, "usher", usher.rss_mib())
            say(
                f"  throughput round {r + 1}: "
                + ", ".join(
                    f"{n} {self.results.get(f'rps {n}', label, 'usher')[-1]:.1f}/"
                    f"{self.results.get(f'rps {n}', label, 'floor')[-1]:.1f} req/s"
                    for n in ("first page", "preview")
                )
            )

    async def invite(
        self, label: str, conn: asyncpg.Connection, usher: procs.Proc, floor: procs.Proc
    ) -> None:
        headers = {"content-type": "application/json", "authorization": f"Bearer {self.owner}"}
        async with httpx.AsyncClient(timeout=300) as http:

            async def call(proc: procs.Proc, prefix: str) -> float:
                emails = [f"{prefix}-{i}@{self.tag}.invite.example" for i in range(100)]
                started = time.perf_counter()
                r = await http.post(proc.url, content=ops.invite_body(emails), headers=headers)
                elapsed = time.perf_counter() - started
                data = r.json()["data"]["invite"]
                assert not data["errors"] and len(data["invitations"]) == 100, r.text[:500]
                return elapsed

            for side, proc in (("usher", usher), ("floor", floor)):  # warm
                await call(proc, f"warm-{side}")
            for r in range(self.args.rounds):
                for side, proc in sides(usher, floor, r):
                    self.results.add(
                        "invite 100", label, side, await call(proc, f"a{r}-{side}") * 1000
                    )
                for side, proc in sides(usher, floor, r):
                    times = [await call(proc, f"b{r}-{side}-{c}") * 1000 for c in range(10)]
                    self.results.add("invite 1000", label, side, sum(times))
                    # Flat: the last three calls of 100 take as long as the first three.
                    self.results.add(
                        "invite 1000 flat", label, side, sum(times[-3:]) / sum(times[:3])
                    )
                say(
                    f"  invite round {r + 1}: 100 in "
                    f"{self.results.get('invite 100', label, 'usher')[-1]:.0f}/"
                    f"{self.results.get('invite 100', label, 'floor')[-1]:.0f} ms, 1000 in "
                    f"{self.results.get('invite 1000', label, 'usher')[-1]:.0f}/"
                    f"{self.results.get('invite 1000', label, 'floor')[-1]:.0f} ms"
                )
        await purge(conn)

    async def sweep(
        self,
        label: str,
        db: seed.SizedDb,
        conn: asyncpg.Connection,
        usher: procs.Proc,
        cases: dict[str, tuple[Path, str | None]],
    ) -> None:
        from tortoise import Tortoise

        from app.config import tortoise_config
        from app.jobs.expiry import sweep_expired

        path, _ = cases["preview"]
        await Tortoise.init(config=tortoise_config(db.url), _enable_global_fallback=True)
        try:
            for r in range(min(self.args.rounds, SLOW_ROUNDS)):
                await overdue(conn)
                idle = await asyncio.to_thread(
                    procs.wrk,
                    usher.url,
                    path,
                    jwt=None,
                    seconds=self.args.latency_duration,
                    connections=1,
                )
                load = procs.wrk_background(usher.url, path, jwt=None)
                started = time.perf_counter()
                flipped = await sweep_expired({"settings": Settings(database_url=db.url)})
                elapsed = time.perf_counter() - started
                during = procs.stop_wrk(load)
                assert flipped == SWEEP_SIZE, flipped
                self.results.add("sweep", label, "usher", elapsed)
                self.results.add("sweep p99 idle", label, "usher", idle["p99"])
                self.results.add("sweep p99 during", label, "usher", during["p99"])
                await purge(conn)
                await overdue(conn)
                started = time.perf_counter()
                status = await conn.execute(FLOOR_SWEEP)
                self.results.add("sweep", label, "floor", time.perf_counter() - started)
                assert status.endswith(str(SWEEP_SIZE)), status
                await purge(conn)
                say(
                    f"  sweep round {r + 1}: {elapsed:.1f}/"
                    f"{self.results.get('sweep', label, 'floor')[-1]:.1f} s; preview p99 "
                    f"{idle['p99']:.1f} ms idle, {during['p99']:.1f} ms during"
                )
        finally:
            await Tortoise.close_connections()

    async def email(
        self, label: str, db: seed.SizedDb, conn: asyncpg.Connection, redis: procs.Proc
    ) -> None:
        from tortoise import Tortoise

        from app.config import tortoise_config

        sink = procs.start_sink()
        smtp = f"smtp://127.0.0.1:{sink.port}"
        redis_url = f"redis://127.0.0.1:{redis.port}/0"
        await Tortoise.init(config=tortoise_config(db.url), _enable_global_fallback=True)
        try:
            for r in range(min(self.args.rounds, SLOW_ROUNDS)):
                worker = await self.worker_delivery(db, conn, smtp, redis_url)
                inline = await self.inline_delivery(db, conn, smtp)
                bare20 = await bare_loop(smtp, WORKER_CONCURRENCY)
                bare10 = await bare_loop(smtp, INLINE_CONCURRENCY)
                self.results.add("email worker", label, "usher", worker)
                self.results.add("email worker", label, "floor", bare20)
                self.results.add("email inline", label, "usher", inline)
                self.results.add("email inline", label, "floor", bare10)
                say(
                    f"  email round {r + 1}: worker {worker:.1f} s vs bare loop {bare20:.1f} s "
                    f"(x{WORKER_CONCURRENCY}); in-process {inline:.1f} s vs {bare10:.1f} s "
                    f"(x{INLINE_CONCURRENCY})"
                )
        finally:
            await Tortoise.close_connections()
            sink.stop()

    async def worker_delivery(
        self, db: seed.SizedDb, conn: asyncpg.Connection, smtp: str, redis_url: str
    ) -> float:
        """Seconds from handing 1000 outbox rows to the queue until all are recorded sent."""
        from arq import create_pool
        from arq.connections import RedisSettings

        from app.jobs.outbox import relay_outbox

        queue = f"bench-mail-{uuid.uuid4().hex[:8]}"
        env = procs.server_env(db.url, redis_url, USHER_SMTP_URL=smtp, USHER_QUEUE_NAME=queue)
        worker = await asyncio.to_thread(start_worker, env)
        pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
        try:
            await queue_mails(conn)
            settings = Settings(database_url=db.url, redis_url=redis_url, queue_name=queue)
            started = time.perf_counter()
            # The worker's own relay (its cron, every 10 s) may take some of the rows first.
            await relay_outbox({"settings": settings, "redis": pool})
            await wait_sent(conn)
            return time.perf_counter() - started
        finally:
            await pool.aclose()
            worker.stop()
            await purge(conn)

    async def inline_delivery(self, db: seed.SizedDb, conn: asyncpg.Connection, smtp: str) -> float:
        """Seconds for the in-process runner's relay to send 1000 queued emails."""
        from app.jobs.inline import InlineRunner

        await queue_mails(conn)
        settings = Settings(
            database_url=db.url,
            redis_url=None,
            smtp_url=smtp,
            quota_mails_per_recipient_day=10**9,
        )
        runner = InlineRunner(settings)
        started = time.perf_counter()
        taken = await runner.relay()
        elapsed = time.perf_counter() - started
        assert taken == MAILS, taken
        await wait_sent(conn, within=5)
        await purge(conn)
        return elapsed

    # --- the report --------------------------------------------------------------------------

    def report(self, sizes: list[str]) -> str:
        largest, smallest = sizes[-1], sizes[0]
        res = self.results
        rows: list[list[str]] = []

        def ratio_row(
            name: str, measure: str, size: str, unit: str, fmt: str, target: str, ok: Any
        ) -> None:
            u, f = res.get(measure, size, "usher"), res.get(measure, size, "floor")
            if not u or not f:
                return
            ratios = [a / b for a, b in zip(u, f, strict=False)]
            ratio = median(u) / median(f)
            rows.append(
                [
                    name,
                    f"{fmt.format(median(u))} {unit} ({spread(u, fmt)})",
                    f"{fmt.format(median(f))} {unit} ({spread(f, fmt)})",
                    f"{ratio:.2f} ({spread(ratios, '{:.2f}')})",
                    target,
                    "met" if ok(ratio) else "**missed**",
                ]
            )

        ratio_row(
            f"`invitationsByGroup` first 50, {largest} ({group_size(largest)} in the group)",
            "rps first page",
            largest,
            "req/s",
            "{:.1f}",
            "≥ 0.5",
            lambda x: x >= 0.5,
        )
        ratio_row(
            f"`invitationByToken` (the preview), {largest}",
            "rps preview",
            largest,
            "req/s",
            "{:.0f}",
            "≥ 0.5",
            lambda x: x >= 0.5,
        )
        ratio_row(
            f"`invite` with 100 invitees, {largest}",
            "invite 100",
            largest,
            "ms",
            "{:.0f}",
            "≤ 1.5x",
            lambda x: x <= 1.5,
        )
        ratio_row(
            f"1000 invitees (10 calls of 100), {largest}",
            "invite 1000",
            largest,
            "ms",
            "{:.0f}",
            "≤ 1.5x",
            lambda x: x <= 1.5,
        )
        flat = res.get("invite 1000 flat", largest, "usher")
        if flat:
            rows.append(
                [
                    "… flat per invitee: last 3 calls ÷ first 3",
                    f"{median(flat):.2f} ({spread(flat, '{:.2f}')})",
                    f"{median(res.get('invite 1000 flat', largest, 'floor')):.2f}",
                    "",
                    "≈ 1",
                    "met" if median(flat) <= 1.15 else "**missed**",
                ]
            )
        if smallest != largest:
            for name in LATENCY_OPS:
                u_big, u_small = (
                    res.get(f"p99 {name}", largest, "usher"),
                    res.get(f"p99 {name}", smallest, "usher"),
                )
                f_big, f_small = (
                    res.get(f"p99 {name}", largest, "floor"),
                    res.get(f"p99 {name}", smallest, "floor"),
                )
                if not u_big or not u_small:
                    continue
                ratio = median(u_big) / median(u_small)
                rows.append(
                    [
                        f"p99 {largest} ÷ {smallest}: {name}",
                        f"{median(u_small):.1f} → {median(u_big):.1f} ms",
                        f"{median(f_small):.1f} → {median(f_big):.1f} ms",
                        f"{ratio:.2f} (floor {median(f_big) / median(f_small):.2f})",
                        "≤ 1.5x",
                        "met" if ratio <= 1.5 else "**missed**",
                    ]
                )
        ratio_row(
            f"expiry sweep of {SWEEP_SIZE // 1000}k overdue, {largest}",
            "sweep",
            largest,
            "s",
            "{:.1f}",
            "≤ 1.5x",
            lambda x: x <= 1.5,
        )
        idle, during = (
            res.get("sweep p99 idle", largest, "usher"),
            res.get("sweep p99 during", largest, "usher"),
        )
        if idle and during:
            r = median(during) / median(idle)
            rows.append(
                [
                    "… preview p99 during the sweep ÷ idle",
                    f"{median(idle):.1f} → {median(during):.1f} ms ({spread(during, '{:.1f}')})",
                    "",
                    f"{r:.2f}",
                    "≤ 2x",
                    "met" if r <= 2 else "**missed**",
                ]
            )
        ratio_row(
            f"1000 emails, `usher worker` ÷ bare aiosmtplib x{WORKER_CONCURRENCY}",
            "email worker",
            largest,
            "s",
            "{:.2f}",
            "≤ 2x",
            lambda x: x <= 2,
        )
        ratio_row(
            f"1000 emails, in-process runner ÷ bare aiosmtplib x{INLINE_CONCURRENCY}",
            "email inline",
            largest,
            "s",
            "{:.2f}",
            "≤ 2x",
            lambda x: x <= 2,
        )
        peak = max((v for k, v in self.rss.items() if k.endswith("usher")), default=0.0)
        if peak:
            floor_peak = max((v for k, v in self.rss.items() if k.endswith("floor")), default=0.0)
            rows.append(
                [
                    "server RSS, peak (VmHWM) over the run",
                    f"{peak:.0f} MiB",
                    f"{floor_peak:.0f} MiB",
                    "",
                    "≤ 150 MiB",
                    "met" if peak <= 150 else "**missed**",
                ]
            )
        head = ["operation", "Usher (spread)", "floor (spread)", "ratio (spread)", "target", ""]
        lines = [table(head, rows), "", "Latency with one connection (median of rounds), ms:", ""]
        lat_rows = []
        for size in sizes:
            for name in LATENCY_OPS:
                u, f = res.get(f"p99 {name}", size, "usher"), res.get(f"p99 {name}", size, "floor")
                if u:
                    lat_rows.append(
                        [
                            size,
                            name,
                            f"{median(res.get(f'p50 {name}', size, 'usher')):.1f}",
                            f"{median(u):.1f} ({spread(u, '{:.1f}')})",
                            f"{median(res.get(f'p50 {name}', size, 'floor')):.1f}",
                            f"{median(f):.1f} ({spread(f, '{:.1f}')})",
                        ]
                    )
        lines.append(
            table(
                ["size", "operation", "Usher p50", "Usher p99", "floor p50", "floor p99"], lat_rows
            )
        )
        lines += ["", "Peak RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in self.rss.items())]
        if self.failures:
            lines += ["", "Failed phases (their rows are missing):", ""]
            lines += [f"- {f}" for f in self.failures]
        return "\n".join(lines)


def group_size(label: str) -> str:
    return seed.size_label(seed.parse_size(label) // 10)


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def sides(usher: procs.Proc, floor: procs.Proc, round_: int) -> list[tuple[str, procs.Proc]]:
    """Both sides, taking turns at going first."""
    pair = [("usher", usher), ("floor", floor)]
    return pair if round_ % 2 == 0 else pair[::-1]


# --- data for one phase, written and removed set-based ------------------------------------------

BENCH_ROWS = (
    "(group_id = md5('grp-acme')::uuid AND email_key LIKE '%.invite.example') "
    "OR group_id IN (md5('grp-sweep')::uuid, md5('grp-mail')::uuid)"
)


async def purge(conn: asyncpg.Connection) -> None:
    """Remove what the phases added (invites into acme, the sweep and mail groups' rows).

    The tables that point at invitations have no index on `invitation_id`, so a cascading
    DELETE would scan them once per row; the dependents are removed set-based first, with
    foreign-key triggers off for this transaction.
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        doomed = f"SELECT id FROM invitations WHERE {BENCH_ROWS}"
        for table_ in ("invitation_events", "events", "outbox", "invitation_uses"):
            await conn.execute(f"DELETE FROM {table_} WHERE invitation_id IN ({doomed})")
        await conn.execute(f"DELETE FROM invitations WHERE {BENCH_ROWS}")


async def ensure_group(conn: asyncpg.Connection, key: str, name: str) -> None:
    await conn.execute(
        "INSERT INTO groups (id, type, external_id, name, created_at) "
        "VALUES (md5('grp-' || $1::text)::uuid, 'org', $1::text, $2::text, now()) ON CONFLICT DO NOTHING",
        key,
        name,
    )


INSERT_PENDING = """
INSERT INTO invitations (id, target_type, email, email_key, open_key, role, permissions, status,
    expires_at, created_at, updated_at, send_email, delivery_status, send_count, token_version,
    use_count, group_id, inviter_id)
SELECT gen_random_uuid(), 'email', e, e, e, 'member', '[]'::jsonb, 'pending', {expires},
       now() - interval '1 day', now(), true, 'queued', 0, 1, 0, md5('grp-{group}')::uuid,
       md5('user-owner')::uuid
FROM (SELECT '{group}' || i || '@{group}.example' AS e FROM generate_series(1, {n}) AS i) AS rows
"""


async def overdue(conn: asyncpg.Connection) -> None:
    """100k PENDING invitations whose expiry passed an hour ago, in the group org/sweep."""
    await ensure_group(conn, "sweep", "Sweep")
    await conn.execute(
        INSERT_PENDING.format(expires="now() - interval '1 hour'", group="sweep", n=SWEEP_SIZE)
    )
    # Fresh statistics and no dirty pages left from the insert, for either side's timing.
    await conn.execute("ANALYZE invitations")
    await conn.execute("CHECKPOINT")


async def queue_mails(conn: asyncpg.Connection) -> None:
    """1000 PENDING invitations in org/mail, each with its unsent invitation email."""
    await ensure_group(conn, "mail", "Mail")
    await conn.execute(
        INSERT_PENDING.format(expires="now() + interval '7 days'", group="mail", n=MAILS)
    )
    await conn.execute(
        "INSERT INTO outbox (id, kind, token_version, created_at, attempts, invitation_id) "
        "SELECT gen_random_uuid(), 'invitation', 1, now(), 0, id FROM invitations "
        "WHERE group_id = md5('grp-mail')::uuid"
    )


async def wait_sent(conn: asyncpg.Connection, within: float = 300) -> None:
    """Until every mail invitation is recorded SENT (polled on the group's index)."""
    deadline = time.monotonic() + within
    while True:
        sent = await conn.fetchval(
            "SELECT count(*) FROM invitations WHERE group_id = md5('grp-mail')::uuid "
            "AND delivery_status = 'sent'"
        )
        if sent >= MAILS:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sent} of {MAILS} emails sent within {within}s")
        await asyncio.sleep(0.02)


def start_worker(env: dict[str, str]) -> procs.Proc:
    """`usher worker`, once it has started (its startup jobs given a moment to finish)."""
    import subprocess

    log = procs.LOGS / "worker.log"
    log.write_bytes(b"")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(procs.BIN / "usher"), "worker"],
            env=env,
            cwd=procs.ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = procs.Proc("worker", proc, 0, log)
    deadline = time.monotonic() + 60
    while "worker started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"usher worker did not start; see {log}")
        time.sleep(0.05)
    time.sleep(1.0)
    return worker


FLOOR_SWEEP = """
WITH flipped AS (
    UPDATE invitations SET status = 'expired', open_key = NULL
    WHERE status = 'pending' AND expires_at <= now()
    RETURNING *
), audit AS (
    INSERT INTO invitation_events (id, type, created_at, invitation_id)
    SELECT gen_random_uuid(), 'expired', now(), id FROM flipped
)
INSERT INTO events (id, type, data, created_at, group_id, invitation_id)
SELECT gen_random_uuid(), 'invitation.expired',
       jsonb_build_object(
           'invitation', jsonb_build_object('id', f.id, 'targetType', upper(f.target_type),
               'email', f.email, 'firstName', f.first_name, 'lastName', f.last_name,
               'role', f.role, 'permissions', f.permissions, 'message', f.message,
               'metadata', f.metadata, 'returnTo', f.return_to, 'status', 'EXPIRED',
               'expiresAt', f.expires_at, 'createdAt', f.created_at, 'acceptedAt', f.accepted_at,
               'deliveryStatus', upper(f.delivery_status), 'sendCount', f.send_count,
               'lastSentAt', f.last_sent_at, 'maxUses', f.max_uses, 'useCount', f.use_count,
               'inviter', jsonb_build_object('id', u.id, 'externalId', u.external_id,
                   'email', u.email, 'name', u.name)),
           'group', jsonb_build_object('id', g.id, 'type', g.type, 'externalId', g.external_id,
               'name', g.name)),
       now(), f.group_id, f.id
FROM flipped f JOIN groups g ON g.id = f.group_id LEFT JOIN users u ON u.id = f.inviter_id
"""


def _message(i: int) -> EmailMessage:
    """An email of the size of Usher's invitation (text and HTML parts)."""
    m = EmailMessage()
    m["From"] = "invitations@localhost"
    m["To"] = f"mail{i}@mail.example"
    m["Subject"] = "Owner invited you to join Acme"
    m["Message-ID"] = f"<{uuid.uuid4()}@localhost>"
    m.set_content("You are invited to join Acme as member.\n" * 20)
    m.add_alternative(
        "<p>You are invited to join <b>Acme</b> as member.</p>\n" * 20, subtype="html"
    )
    return m


async def bare_loop(smtp: str, concurrency: int) -> float:
    """Seconds to send 1000 messages with aiosmtplib, `concurrency` at a time, a session each
    (as Usher's SMTP transport does)."""
    port = int(smtp.rsplit(":", 1)[1])
    messages = [_message(i) for i in range(MAILS)]
    slots = asyncio.Semaphore(concurrency)

    async def send(m: EmailMessage) -> None:
        async with slots:
            await aiosmtplib.send(m, hostname="127.0.0.1", port=port, start_tls=False)

    started = time.perf_counter()
    await asyncio.gather(*(send(m) for m in messages))
    return time.perf_counter() - started


# --- entry point ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10k,100k,1m", help="comma-separated: 10k,100k,1m")
    p.add_argument("--only", default=",".join(PHASES), help="phases: " + ",".join(PHASES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10, help="seconds per throughput run")
    p.add_argument("--latency-duration", type=float, default=4, help="seconds per latency run")
    args = p.parse_args(argv)
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = args.only - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return args


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base = os.environ.get("BENCH_DATABASE_URL") or seed.DEFAULT_URL
    dbs = sorted(
        (seed.database_for(base, seed.parse_size(s)) for s in args.sizes.split(",")),
        key=lambda d: d.n,
    )
    bench = Bench(args)
    say(f"logs and bodies in {procs.LOGS}")
    started = time.perf_counter()
    redis = procs.start_redis()
    try:
        for db in dbs:
            await bench.run_size(db, redis, largest=db is dbs[-1])
    finally:
        redis.stop()
    labels = [seed.size_label(d.n) for d in dbs]
    text = bench.report(labels)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"{stamp}, {time.perf_counter() - started:.0f} s, rounds {args.rounds}, "
        f"throughput {args.duration:g} s x {THROUGHPUT_CONNECTIONS} connections, "
        f"latency {args.latency_duration:g} s x 1 connection; python {sys.version.split()[0]}"
    )
    (procs.LOGS / "results.md").write_text(header + "\n\n" + text + "\n")
    (procs.LOGS / "results.json").write_text(json.dumps(bench.results.values, indent=1))
    say("\n" + header + "\n\n" + text)


if __name__ == "__main__":
    asyncio.run(main())
