"""Wake-ups for whatever relays the outbox (the in-process runner or the worker's relay).

Services call `notify()` after a transaction that wrote outbox rows has committed; it
makes no network call and never fails, so losing a wake-up only delays a message until
the next sweep.
"""

from __future__ import annotations

from collections.abc import Callable

_listeners: list[Callable[[], None]] = []


def subscribe(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` on every notify; returns a function that unsubscribes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def notify() -> None:
    """Tell listeners that new outbox rows may be waiting."""
    for listener in list(_listeners):
        listener()
