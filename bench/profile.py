"""Where `usher serve` spends its CPU, per operation: `python -m bench.profile [--size 100k]`.

Starts Usher on the seeded database of that size (with a private Redis, as bench/run.py
does), puts one operation at a time under load (wrk with 4 connections for the first page
and the preview; back-to-back `invite` calls of 100 for invite) while py-spy samples the
server (`py-spy record --format raw`), and writes bench/PROFILE.md: for each operation the
share of samples by owner (the innermost frame outside the standard library) and by layer
(a layer counts when any of its frames is on the stack: inclusive), and the busiest
functions. Only samples
holding the GIL are kept: the time the server runs Python. Needs py-spy (`pip install
py-spy`) and ptrace rights over the server (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from app.config import Settings
from bench import ops, procs, seed

OUT = Path(__file__).resolve().parent / "PROFILE.md"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Layers, inclusive: a sample counts for a layer when one of its frames' files matches.
# (uvicorn and starlette are on every stack, so they are not listed here.)
LAYERS = [
    ("strawberry (all of it, with what it calls)", ("strawberry/",)),
    ("graphql-core execution", ("graphql/execution",)),
    ("graphql-core parse + validate", ("graphql/language/parser", "graphql/validation")),
    ("Usher's document limits (app/graphql/limits.py)", ("app/graphql/limits.py",)),
    ("authentication (app/services/auth.py)", ("app/services/auth.py",)),
    ("Tortoise ORM + pypika (with the driver under it)", ("tortoise/", "pypika")),
    ("asyncpg", ("asyncpg/",)),
    ("email_validator", ("email_validator/",)),
    ("quotas on Redis (limits, redis-py)", ("limits/",)),
    ("outbox relay to Redis (app/jobs/outbox.py, arq)", ("app/jobs/outbox.py", "arq/")),
    ("logging (app/log.py and handlers)", ("app/log.py", "logging/")),
]
# Owners of self time, tried in order on the innermost frame that is not the stdlib's.
OWNERS = [
    (
        "graphql-core: parse + validate",
        ("graphql/language", "graphql/validation", "graphql/utilities"),
    ),
    ("graphql-core: execution", ("graphql/",)),
    ("strawberry", ("strawberry/",)),
    ("Tortoise ORM", ("tortoise/",)),
    ("pypika (SQL building)", ("pypika",)),
    ("asyncpg", ("asyncpg/",)),
    ("uvicorn, h11, starlette (HTTP)", ("uvicorn/", "h11/", "starlette/")),
    ("PyJWT", ("jwt/",)),
    ("redis-py, limits, arq", ("redis/", "limits/", "arq/")),
    ("email_validator", ("email_validator/",)),
    ("pydantic", ("pydantic",)),
]


def owner_of(files: list[str]) -> str:
    """Who a sample's time belongs to: the innermost frame outside the standard library."""
    for path in reversed(files):
        if "site-packages/" not in path and "/app/" not in path:
            continue
        if "/app/" in path and "site-packages/" not in path:
            return "Usher: " + path.split("/app/", 1)[1]
        for name, needles in OWNERS:
            if any(n in path for n in needles):
                return name
        return package_of(path)
    return "asyncio and other stdlib only (the loop itself)"


def package_of(path: str) -> str:
    """`tortoise`, `asyncio`… for a frame's file."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    m = re.search(r"/python3\.\d+/(.+)", path)
    if m:
        return m.group(1).split("/", 1)[0].removesuffix(".py")
    return path or "?"


def summarise(raw: str, title: str, top: int = 12) -> str:
    """A Markdown section from py-spy's raw (collapsed) output."""
    total = 0
    by_owner: Counter[str] = Counter()
    by_layer: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [m for f in stack.split(";") if (m := FRAME.match(f))]
        if not frames:
            continue
        total += count
        files = [f["file"] for f in frames]
        by_owner[owner_of(files)] += count
        leaf = frames[-1]
        short = leaf["file"].split("site-packages/")[-1].split("/wt-bench/")[-1]
        short = re.sub(r".*/python3\.\d+/", "", short)
        by_function[f"{leaf['func']} ({short})"] += count
        for name, needles in LAYERS:
            if any(n in path for path in files for n in needles):
                by_layer[name] += count
    if not total:
        return f"## {title}\n\nNo samples.\n"

    def pct(n: int) -> str:
        return f"{100 * n / total:.0f}%"

    lines = [f"## {title}", "", f"{total} samples.", ""]
    lines += ["Self time by owner (the innermost frame outside the standard library):", ""]
    lines += [f"- {pct(n)} {name}" for name, n in by_owner.most_common(14)]
    lines += ["", "Inclusive, by layer:", ""]
    lines += [f"- {pct(n)} {name}" for name, n in by_layer.most_common()]
    lines += ["", "Busiest functions (self time):", ""]
    lines += [f"- {pct(n)} `{name}`" for name, n in by_function.most_common(top)]
    return "\n".join(lines) + "\n"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(procs.BIN / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is missing: .venv/bin/pip install py-spy")
    return found


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    argv = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--duration",
        str(int(seconds)),
        "--format",
        "raw",
        # Samples holding the GIL: Python running, not waiting for the database or a socket.
        "--gil",
        "--full-filenames",
        "--output",
        str(out),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def invite_load(url: str, jwt: str, seconds: float) -> int:
    """`invite` calls of 100, back to back, for `seconds`; returns how many."""
    headers = {"content-type": "application/json", "authorization": f"Bearer {jwt}"}
    tag = uuid.uuid4().hex[:6]
    calls = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=120) as http:
        while time.monotonic() < deadline:
            emails = [f"p{calls}-{i}@{tag}.invite.example" for i in range(100)]
            r = await http.post(url, content=ops.invite_body(emails), headers=headers)
            assert not r.json()["data"]["invite"]["errors"], r.text[:300]
            calls += 1
    return calls


async def _purge(db: seed.SizedDb) -> None:
    import asyncpg

    from bench.run import purge

    conn = await asyncpg.connect(seed.asyncpg_dsn(db.url))
    try:
        await purge(conn)
    finally:
        await conn.close()


def profile_wrk(usher: procs.Proc, path: Path, jwt: str | None, seconds: float) -> str:
    """Profile the server while wrk sends the bodies of `path`; the summary's title."""
    procs.wrk(usher.url, path, jwt=jwt, seconds=2, connections=4)  # warm
    out = procs.LOGS / f"profile-{path.stem}.txt"
    spy = record(usher.pid, seconds, out)
    time.sleep(0.5)
    result = procs.wrk(usher.url, path, jwt=jwt, seconds=seconds, connections=4)
    spy.wait()
    return summarise(out.read_text(), f"{result['rps']:.0f} req/s")


def profile_invite(usher: procs.Proc, jwt: str, seconds: float) -> str:
    asyncio.run(invite_load(usher.url, jwt, 2))  # warm
    out = procs.LOGS / "profile-invite.txt"
    spy = record(usher.pid, seconds, out)
    time.sleep(0.5)
    calls = asyncio.run(invite_load(usher.url, jwt, seconds))
    spy.wait()
    return summarise(out.read_text(), f"{calls} calls")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", default="100k")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument(
        "--only",
        default="list,preview,invite",
        help="operations (list,preview,invite); bench/PROFILE.md is written only with all three",
    )
    args = p.parse_args()
    only = set(args.only.split(","))
    base = os.environ.get("BENCH_DATABASE_URL") or seed.DEFAULT_URL
    db = seed.database_for(base, seed.parse_size(args.size))
    asyncio.run(seed.ensure(db))
    settings = Settings()
    owner = ops.owner_jwt(settings)
    first = procs.LOGS / "first.jsonl"
    first.write_text(ops.list_body() + "\n")
    preview = procs.LOGS / "preview.jsonl"
    step = max(db.n // 1000, 1)
    tokens = [ops.preview_body(ops.token_of(settings, i)) for i in range(0, db.n, step)]
    preview.write_text("\n".join(tokens) + "\n")
    redis = procs.start_redis()
    usher = procs.start_usher(procs.server_env(db.url, f"redis://127.0.0.1:{redis.port}/0"))
    sections = [
        "# Where `usher serve` spends its CPU",
        "",
        f"Written by `python -m bench.profile --size {args.size}` (py-spy, {args.seconds:g} s per "
        "operation, 200 samples/s, the server under load: wrk with 4 connections, or `invite` "
        "calls of 100 back to back). Only samples holding the GIL are kept (`--gil`): "
        "percentages are of the time the server ran Python; waiting on the database, Redis "
        "or a socket is not in them.",
        "",
    ]
    try:
        if "list" in only:
            first_page = profile_wrk(usher, first, owner, args.seconds)
            sections.append(
                first_page.replace("## ", f"## `invitationsByGroup` first 50, {args.size}: ", 1)
            )
        if "preview" in only:
            shown = profile_wrk(usher, preview, None, args.seconds)
            sections.append(
                shown.replace("## ", f"## `invitationByToken` (the preview), {args.size}: ", 1)
            )
        if "invite" in only:
            invited = profile_invite(usher, owner, args.seconds)
            sections.append(
                invited.replace("## ", f"## `invite` with 100 invitees, {args.size}: ", 1)
            )
    finally:
        usher.stop()
        redis.stop()
        asyncio.run(_purge(db))
    if only >= {"list", "preview", "invite"}:
        OUT.write_text("\n".join(sections))
        print(f"wrote {OUT}; raw profiles in {procs.LOGS}")
    else:
        print("\n".join(sections[len(sections) - len(only) :]))
        print(f"raw profiles in {procs.LOGS}")


if __name__ == "__main__":
    main()
