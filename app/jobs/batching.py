"""Concurrent calls served together: what queues while one batch runs goes in the next.

Many delivery jobs run at once in one process, and each would read its row and record its
send in statements of its own. A `Batcher` hands the calls that arrive while the previous
batch is in the database to one call of a batch function, so under load the statements
are shared, and a lone call goes at once: there is no timer to wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """Calls `run` with the items of every caller queued meanwhile, at most `max_size` at a
    time, one batch after the other. `run` returns one result per item, in order; an
    exception among the results is raised to that item's caller alone."""

    def __init__(
        self,
        run: Callable[[list[In]], Awaitable[Sequence[Out | Exception]]],
        *,
        max_size: int = 50,
    ) -> None:
        self._run = run
        self.max_size = max_size
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: In) -> Out:
        """`item`'s result, once the batch it joined has run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        future.add_done_callback(_retrieve)
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        # A caller cancelled while it waits leaves its item in the batch: the batch runs
        # for the others anyway, and a send already made is still recorded.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_size]
            del self._queue[: self.max_size]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:
                for _, future in batch:
                    future.cancel()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an exception as seen: a caller cancelled meanwhile never reads it."""
    if not future.cancelled():
        future.exception()
