"""Jobs in the server's own process, for a single-command service without Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from app.config import Settings
from app.services.invitations import expire_overdue, utcnow

log = logging.getLogger("usher.jobs")


class InlineRunner:
    """Runs the periodic jobs on the server's event loop while the app lives."""

    def __init__(self, settings: Settings, *, interval: float = 30.0) -> None:
        self.settings = settings
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        """One round of every periodic job."""
        flipped = await expire_overdue(now=utcnow(), limit=1000)
        if flipped:
            log.info("expired %d invitations", flipped)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("in-process jobs failed; trying again in %ss", self.interval)
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> InlineRunner:
        self._task = asyncio.create_task(self._loop(), name="usher-inline-jobs")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
