"""The processes a benchmark run starts: Usher, the floor app, a private Redis, an SMTP sink,
the arq worker, and wrk. Each is stopped by its own pid when the run ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WRK = os.environ.get("WRK", "wrk")
LOGS = Path(tempfile.mkdtemp(prefix="usher-bench-"))


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, within: float = 60) -> None:
    """Return once something accepts connections on `port`; fail if `proc` died."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {within}s; see {log}")


@dataclass
class Proc:
    """A process of ours, its port and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def rss_mib(self, field: str = "VmRSS") -> float:
        """Resident memory now (VmRSS) or at its peak so far (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(name: str, argv: list[str], env: dict[str, str], port: int) -> Proc:
    """Start `argv` with its output to a log file, and wait for its port."""
    log = LOGS / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    p = Proc(name, proc, port, log)
    try:
        wait_for_port(port, proc, log)
    except BaseException:
        p.stop()
        raise
    return p


def server_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of Usher and the floor: a development setup with the quotas raised
    out of the way (the benchmark invites thousands into one group within minutes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USHER_")}
    env.update(
        DATABASE_URL=database_url,
        USHER_ENV="development",
        USHER_QUOTA_INVITES_PER_INVITER_HOUR="1000000000",
        USHER_QUOTA_INVITES_PER_GROUP_DAY="1000000000",
        USHER_QUOTA_PENDING_PER_GROUP="1000000000",
        USHER_QUOTA_MAILS_PER_RECIPIENT_DAY="1000000000",
        USHER_MAIL_DIR=str(LOGS / "outbox"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def start_usher(env: dict[str, str]) -> Proc:
    """`usher serve` (uvicorn, one process) on a free port, migrations already applied."""
    port = free_port()
    argv = [str(BIN / "usher"), "serve", "--port", str(port), "--no-migrate"]
    return start("usher", argv, env, port)


def start_floor(env: dict[str, str]) -> Proc:
    """The floor app under the same uvicorn, logging as `usher serve` does."""
    port = free_port()
    code = (
        "import uvicorn; from app.log import configure_logging, uvicorn_log_config; "
        "configure_logging(); "
        f"uvicorn.run('bench.floor:app', host='127.0.0.1', port={port}, log_level='info', "
        "log_config=uvicorn_log_config())"
    )
    return start("floor", [sys.executable, "-c", code], env, port)


def start_redis() -> Proc:
    """A private redis-server on a free port, in memory only."""
    port = free_port()
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    return start("redis", argv, dict(os.environ), port)


def start_sink() -> Proc:
    """The SMTP sink (bench.mailsink) on a free port."""
    port = free_port()
    return start(
        "mailsink", [sys.executable, "-m", "bench.mailsink", str(port)], dict(os.environ), port
    )


def wrk(
    url: str,
    bodies: Path,
    *,
    jwt: str | None,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """One wrk run (one thread): requests, req/s and latency percentiles in ms."""
    argv = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(int(seconds), 1)}s",
        "--timeout",
        "30s",
        "-s",
        str(ROOT / "bench" / "wrk.lua"),
        url,
        "--",
        str(bodies),
        jwt or "-",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, Any]:
    """The JSON line bench/wrk.lua's `done` printed, in friendlier units."""
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    raw = json.loads(line[5:])
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50": raw["p50_us"] / 1000,
        "p90": raw["p90_us"] / 1000,
        "p99": raw["p99_us"] / 1000,
        "max": raw["max_us"] / 1000,
        "errors": raw["socket_errors"] + raw["non2xx"],
    }


def wrk_background(url: str, bodies: Path, *, jwt: str | None) -> subprocess.Popen[str]:
    """wrk with one connection until interrupted (SIGINT makes it print its summary)."""
    argv = [
        WRK,
        "-t1",
        "-c1",
        "-d3600s",
        "--timeout",
        "30s",
        "-s",
        str(ROOT / "bench" / "wrk.lua"),
        url,
        "--",
        str(bodies),
        jwt or "-",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_wrk(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Interrupt a background wrk and read its summary."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return parse_wrk(out)
