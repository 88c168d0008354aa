"""An SMTP server that accepts every message and keeps nothing: `python -m bench.mailsink PORT`.

Run in a process of its own, so that the sink's work is not counted against the sender.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller


class Sink:
    """Answers 250 to every message."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 Message accepted for delivery"


def main() -> None:
    controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
