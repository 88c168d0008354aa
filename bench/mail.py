"""Email throughput, run by hand: 1000 queued invitation emails delivered by `usher worker`
(arq on a private redis-server) and by the in-process runner, against bare aiosmtplib loops
at the same concurrency, all to an SMTP sink in a process of its own.

    createdb -h 127.0.0.1 -U postgres usher_mail_bench
    .venv/bin/python -m bench.mail --database-url postgres://postgres@127.0.0.1:5432/usher_mail_bench
    dropdb -h 127.0.0.1 -U postgres usher_mail_bench

Without --database-url it runs on a temporary SQLite file. The database is migrated, and
the rows this adds are deleted after each round. Every round gives wall time and the CPU
time of the process that sends (the worker, or this one), a job and its floors one after
the other. Two floors: `aiosmtplib.send` per message
(a session each, as Usher's transport did before it pooled), and one session per concurrent
sender kept for all its messages (the best a pooled sender can do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from tortoise import Tortoise

from app.cli import migrate_database
from app.config import Settings, tortoise_config
from app.models import (
    DeliveryStatus,
    Group,
    Invitation,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    TargetType,
    User,
)
from app.services.common import utcnow

ROOT = Path(__file__).resolve().parents[1]
MAILS = 1000
# The floors run at the jobs' concurrency: 20 for arq's max_jobs in app/jobs/worker.py,
# 10 for CONCURRENT_SENDS in app/jobs/inline.py.

SINK = """
import sys, threading
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 Message accepted for delivery"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
threading.Event().wait()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Proc:
    """A child process of the benchmark, stopped by its own handle."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None):
        out = log.open("ab") if log else subprocess.DEVNULL
        self.log = log
        self.process = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until(condition, what: str, within: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {within}s")
        time.sleep(0.05)


def start_sink(tmp: Path) -> tuple[Proc, int]:
    port = free_port()
    log = tmp / "sink.log"
    sink = Proc([sys.executable, "-c", SINK, str(port)], log=log)
    wait_until(lambda: "ready" in sink.text(), "the SMTP sink start")
    return sink, port


def start_redis() -> tuple[Proc, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = Proc(args)

    def answers() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(answers, "redis-server start")
    return redis, port


async def queue_mails() -> Group:
    """1000 PENDING invitations in a group of their own, each with its invitation email."""
    owner, _ = await User.get_or_create(
        external_id="bench-owner",
        defaults={"email": "owner@bench.example", "name": "Owner", "email_verified": True},
    )
    group = await Group.create(type="bench", external_id=uuid.uuid4().hex, name="Bench")
    expires = utcnow() + timedelta(days=7)
    rows = []
    for i in range(MAILS):
        email = f"mail{i}-{group.external_id[:8]}@mail.example"
        rows.append(
            Invitation(
                id=uuid.uuid4(),
                group=group,
                target_type=TargetType.EMAIL,
                email=email,
                email_key=email,
                open_key=email,
                role="member",
                status=InvitationStatus.PENDING,
                expires_at=expires,
                inviter=owner,
                delivery_status=DeliveryStatus.QUEUED,
            )
        )
    await Invitation.bulk_create(rows, batch_size=500)
    await OutboxMessage.bulk_create(
        [
            OutboxMessage(kind=MessageKind.INVITATION, invitation_id=row.id, token_version=1)
            for row in rows
        ],
        batch_size=500,
    )
    return group


async def wait_sent(group: Group, within: float = 300) -> None:
    deadline = time.monotonic() + within
    while True:
        sent = await Invitation.filter(group=group, delivery_status=DeliveryStatus.SENT).count()
        if sent >= MAILS:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sent} of {MAILS} emails sent within {within}s")
        await asyncio.sleep(0.02)


async def purge(group: Group) -> None:
    await Group.filter(id=group.id).delete()  # invitations, outbox rows and events cascade


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def worker_round(
    url: str, smtp: str, redis_url: str, tmp: Path, profile: Path | None = None
) -> tuple[float, float]:
    """Seconds from handing 1000 outbox rows to the queue until all are recorded sent, and
    the CPU seconds the worker process used meanwhile; with `profile`, py-spy samples the
    worker meanwhile and its summary (bench.profile's) is written there."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from app.jobs.outbox import relay_outbox

    queue = f"bench-mail-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "USHER_SMTP_URL": smtp,
        "USHER_QUEUE_NAME": queue,
        "USHER_LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp / f"worker-{queue}.log"
    worker = Proc([sys.executable, "-m", "app.cli", "worker"], env=env, log=log)
    try:
        wait_until(lambda: "worker started" in worker.text(), "usher worker start")
        await asyncio.sleep(1.0)  # its startup jobs
        group = await queue_mails()
        pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
        try:
            settings = Settings(database_url=url, redis_url=redis_url, queue_name=queue)
            spy = None
            if profile is not None:
                from bench.profile import record

                spy = record(worker.process.pid, 300, tmp / "worker-profile.txt")
                await asyncio.sleep(1.0)  # py-spy attached
            cpu = cpu_seconds(worker.process.pid)
            started = time.perf_counter()
            handed = await relay_outbox({"settings": settings, "redis": pool})
            await wait_sent(group)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(worker.process.pid) - cpu
            if spy is not None and profile is not None:
                from bench.profile import summarise

                spy.send_signal(signal.SIGINT)
                spy.wait()
                raw = (tmp / "worker-profile.txt").read_text()
                summary = summarise(raw, f"usher worker, {MAILS} emails")
                profile.write_text(summary)  # noqa: ASYNC240 (between rounds)
            assert handed <= MAILS, handed
        finally:
            await pool.aclose()
        await purge(group)
        return elapsed, cpu
    finally:
        worker.stop()


async def inline_round(url: str, smtp: str) -> tuple[float, float]:
    """Seconds for the in-process runner's relay to send 1000 queued emails, and its CPU
    seconds."""
    from app.jobs.inline import InlineRunner

    group = await queue_mails()
    settings = Settings(
        database_url=url, redis_url=None, smtp_url=smtp, quota_mails_per_recipient_day=10**9
    )
    runner = InlineRunner(settings)
    cpu, started = time.process_time(), time.perf_counter()
    taken = await runner.relay()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    closing = getattr(runner.ctx["transport"], "aclose", None)
    if closing is not None:
        await closing()
    assert taken == MAILS, taken
    await wait_sent(group, within=5)
    await purge(group)
    return elapsed, cpu


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


async def bare_per_message(port: int, concurrency: int) -> tuple[float, float]:
    """1000 messages with `aiosmtplib.send`, `concurrency` at a time, a session each."""
    messages = [_message(i) for i in range(MAILS)]
    slots = asyncio.Semaphore(concurrency)

    async def send(m: EmailMessage) -> None:
        async with slots:
            await aiosmtplib.send(m, hostname="127.0.0.1", port=port, start_tls=False)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(send(m) for m in messages))
    return time.perf_counter() - started, time.process_time() - cpu


async def bare_sessions(port: int, concurrency: int) -> tuple[float, float]:
    """1000 messages over `concurrency` sessions, each kept open for all its messages."""
    messages = [_message(i) for i in range(MAILS)]

    async def sender(share: list[EmailMessage]) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
            for m in share:
                await smtp.send_message(m)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(sender(messages[k::concurrency]) for k in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite://{tmp / 'bench.db'}"
        await migrate_database(url)
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        sink, smtp_port = start_sink(tmp)
        redis, redis_port = start_redis()
        smtp = f"smtp://127.0.0.1:{smtp_port}"
        rounds: list[dict[str, tuple[float, float]]] = []
        try:
            for r in range(args.rounds):
                got: dict[str, tuple[float, float]] = {}
                if "worker" in args.only:
                    redis_url = f"redis://127.0.0.1:{redis_port}/0"
                    profile = Path(args.profile) if args.profile and r == 0 else None
                    got["worker"] = await worker_round(url, smtp, redis_url, tmp, profile)
                    got["bare x20 per message"] = await bare_per_message(smtp_port, 20)
                    got["bare x20 sessions"] = await bare_sessions(smtp_port, 20)
                if "inline" in args.only:
                    got["inline"] = await inline_round(url, smtp)
                    got["bare x10 per message"] = await bare_per_message(smtp_port, 10)
                    got["bare x10 sessions"] = await bare_sessions(smtp_port, 10)
                rounds.append(got)
                print(
                    f"round {r + 1}: "
                    + ", ".join(
                        f"{k} {wall:.2f}s ({cpu:.2f}s CPU)" for k, (wall, cpu) in got.items()
                    ),
                    flush=True,
                )
                if args.json:
                    with Path(args.json).open("a") as out:  # noqa: ASYNC230 (between rounds)
                        out.write(json.dumps(got) + "\n")
        finally:
            redis.stop()
            sink.stop()
            await Tortoise.close_connections()
        report(rounds, url)


def report(rounds: list[dict[str, tuple[float, float]]], url: str) -> None:
    """Medians, and each job against its floors: the median of the rounds' ratios (a job
    and its floors run one after the other, under the same load)."""
    print(f"\nmedian of {len(rounds)} rounds, {MAILS} emails ({url.split(':')[0]}):")
    for name in rounds[0]:
        wall = statistics.median(r[name][0] for r in rounds)
        cpu = statistics.median(r[name][1] for r in rounds)
        print(f"  {name:22} {wall:6.2f} s wall  {cpu * 1000 / MAILS:5.2f} ms CPU per email")
    for job, floor in (("worker", "x20"), ("inline", "x10")):
        if job not in rounds[0]:
            continue
        for kind in ("per message", "sessions"):
            name = f"bare {floor} {kind}"
            wall = statistics.median(r[job][0] / r[name][0] for r in rounds)
            cpu = statistics.median(r[job][1] / r[name][1] for r in rounds)
            print(f"  {job} / {name:22} {wall:4.1f}x wall  {cpu:4.1f}x CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="worker,inline")
    parser.add_argument("--json", help="append each round's figures to this file")
    parser.add_argument("--profile", help="py-spy the worker's first round; summary to this file")
    asyncio.run(main(parser.parse_args()))
