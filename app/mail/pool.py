"""A bounded pool of SMTP sessions, so a burst of emails does not open a session each.

Opening a session (TCP, greeting, EHLO, often STARTTLS and AUTH) costs more round trips
than the message it carries. The pool keeps at most `size` sessions open, in use or idle.
A session goes back to the pool only after a message it carried was accepted: one that
failed in any way is closed, never reused. An idle session is closed after
`idle_seconds`, before the server's own timeout would cut it, and a session is retired
after `max_messages`, as servers cap the messages of one session. The session used last
is handed out first, so when the load drops the others idle out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiosmtplib

log = logging.getLogger("usher.mail")

# How long a polite QUIT may take when a session is retired.
QUIT_SECONDS = 5.0


class PooledSession:
    """An open SMTP session, and what the pool knows of it."""

    def __init__(self, client: aiosmtplib.SMTP, *, reused: bool) -> None:
        self.client = client
        # Taken from the idle sessions rather than opened for this message: the server may
        # have dropped it meanwhile without our noticing yet.
        self.reused = reused
        self.messages = 0
        self.idle_since = 0.0


class SmtpPool:
    """At most `size` SMTP sessions, opened by `connect` when none is idle."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[aiosmtplib.SMTP]],
        *,
        size: int,
        idle_seconds: float,
        max_messages: int,
        wait_seconds: float,
    ) -> None:
        self._connect = connect
        self.size = size
        self.idle_seconds = idle_seconds
        self.max_messages = max_messages
        self.wait_seconds = wait_seconds
        # One slot per session in use. A session is only opened when none is idle, so
        # sessions in use plus idle ones never exceed `size`.
        self._slots = asyncio.Semaphore(size)
        self._idle: list[PooledSession] = []  # oldest first
        self._reaper: asyncio.TimerHandle | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    async def acquire(self, *, fresh: bool = False) -> PooledSession:
        """A session for one message: the idle one used last, or a new one (`fresh`: always
        a new one, closing the idle ones). Release it with `release()`.

        Raises TimeoutError when no slot frees within `wait_seconds`, and whatever
        `connect` raises.
        """
        async with asyncio.timeout(self.wait_seconds):
            await self._slots.acquire()
        try:
            if fresh:
                # The server dropped a session that looked alive: the idle ones, as old or
                # older, are likely gone too.
                while self._idle:
                    self._retire(self._idle.pop())
            loop = asyncio.get_running_loop()
            while self._idle:
                session = self._idle.pop()
                if session.client.is_connected and (
                    loop.time() - session.idle_since < self.idle_seconds
                ):
                    return session
                self._retire(session)
            return PooledSession(await self._connect(), reused=False)
        except BaseException:
            self._slots.release()
            raise

    def release(self, session: PooledSession, *, accepted: bool) -> None:
        """Give a session back: kept for the next message if the one it carried was
        `accepted` and it may carry more, closed otherwise."""
        self._slots.release()
        if accepted:
            session.messages += 1
        keep = (
            accepted
            and not self._closed
            and session.messages < self.max_messages
            and session.client.is_connected
        )
        if not keep:
            self._retire(session, polite=accepted)
            return
        session.reused = True
        session.idle_since = asyncio.get_running_loop().time()
        self._idle.append(session)
        self._schedule_reaper()

    async def aclose(self) -> None:
        """Close the idle sessions now, and the ones in use when they come back."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        while self._idle:
            self._retire(self._idle.pop())
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    def _schedule_reaper(self) -> None:
        if self._reaper is None and self._idle:
            loop = asyncio.get_running_loop()
            due = self._idle[0].idle_since + self.idle_seconds
            self._reaper = loop.call_at(due, self._reap)

    def _reap(self) -> None:
        self._reaper = None
        now = asyncio.get_running_loop().time()
        while self._idle and now - self._idle[0].idle_since >= self.idle_seconds:
            self._retire(self._idle.pop(0))
        self._schedule_reaper()

    def _retire(self, session: PooledSession, *, polite: bool = True) -> None:
        """Close a session: QUIT if it is healthy, else drop the connection at once."""
        if not (polite and session.client.is_connected):
            session.client.close()
            return
        task = asyncio.get_running_loop().create_task(self._quit(session.client))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit(timeout=QUIT_SECONDS)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.debug("SMTP QUIT failed: %r", exc)
        finally:
            with contextlib.suppress(Exception):
                client.close()
