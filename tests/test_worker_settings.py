"""`arq app.jobs.worker.WorkerSettings` runs the worker `usher worker` runs."""

from __future__ import annotations

from typing import Any

from arq.worker import Worker, create_worker

from app.jobs.worker import WorkerSettings, arq_settings, build_worker


def described(worker: Worker) -> dict[str, Any]:
    """What a worker does, in values that compare (not the objects it holds)."""
    redis = worker.redis_settings
    assert redis is not None
    return {
        "class": type(worker),
        "functions": {
            name: (f.coroutine, f.max_tries, f.timeout_s, f.keep_result_s)
            for name, f in worker.functions.items()
        },
        "cron_jobs": sorted(job.name for job in worker.cron_jobs),
        "queue_name": worker.queue_name,
        "on_startup": worker.on_startup,
        "on_shutdown": worker.on_shutdown,
        "max_jobs": worker.max_jobs,
        "job_timeout_s": worker.job_timeout_s,
        "poll_delay_s": worker.poll_delay_s,
        "job_completion_wait": worker._job_completion_wait,
        "ctx": sorted(worker.ctx),
        "redis": (redis.host, redis.port, redis.database, redis.retry_on_error),
        "redis_retries": redis.retry is not None and redis.retry._retries,
    }


async def test_worker_settings_agree_with_usher_worker() -> None:
    by_arq = create_worker(WorkerSettings, handle_signals=False)
    by_usher = build_worker(arq_settings(), handle_signals=False)
    assert described(by_arq) == described(by_usher)
    assert type(by_usher) is Worker
    assert by_usher.job_timeout_s == arq_settings().job_timeout_seconds
    assert "deliver" in by_usher.functions
