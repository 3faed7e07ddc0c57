"""Telling systemd how the service is (sd_notify(3)), when it runs as a ``Type=notify`` unit.

systemd sets ``NOTIFY_SOCKET`` for such a unit, and ``WATCHDOG_USEC`` (with ``WATCHDOG_PID``) when the unit
has ``WatchdogSec=``. The service then sends ``READY=1`` once it has started, and ``WATCHDOG=1`` more often
than every ``WatchdogSec``; systemd restarts a service whose pings stop. Pings are sent only while the
pipeline's publishing loop keeps running, so a stalled pipeline (a hung model, a blocked event loop) is
restarted, while a quiet room or switched-off detection, which still tick, are not. Without
``NOTIFY_SOCKET`` (any other way of running the appliance) nothing is sent.

The protocol is a datagram of ``KEY=value`` lines on a Unix socket; an address starting with ``@`` is in
the abstract namespace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# How often the pipeline's first tick is looked for (systemd's TimeoutStartSec bounds the wait).
_POLL_S = 0.05


class SystemdNotifier:
    """Sends sd_notify messages to the socket systemd named."""

    def __init__(self, address: str, watchdog_s: float | None) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = watchdog_s
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier | None:
        """The notifier systemd asked for, or None when the service does not run under systemd's eye."""
        address = environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        return cls(address, _watchdog_s(environ))

    def notify(self, *fields: str) -> None:
        """Send one message (``READY=1``, ``STATUS=...``); a missing socket is logged, never raised: being
        watched must not be able to stop the service."""
        try:
            self._socket.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.warning("could not notify systemd", extra={"fields": {"error": str(exc)}})

    def close(self) -> None:
        self._socket.close()


def _watchdog_s(environ: Mapping[str, str]) -> float | None:
    """``WATCHDOG_USEC`` in seconds, if the watchdog is meant for this process (``WATCHDOG_PID``)."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


async def keep_systemd_informed(
    notifier: SystemdNotifier,
    last_tick: Callable[[], float | None],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """``READY=1`` once the pipeline has ticked for the first time, then ``WATCHDOG=1`` every half watchdog
    period while it keeps ticking (``last_tick``: the ``clock`` time of its latest tick, None before the
    first). Runs until cancelled."""
    while True:  # the pipeline has no event to wait on; its tick is a plain attribute
        if last_tick() is not None:
            break
        await asyncio.sleep(_POLL_S)
    notifier.notify("READY=1", "STATUS=running")
    if notifier.watchdog_s is None:
        return
    interval = notifier.watchdog_s / 2
    stalled = False
    while True:
        await asyncio.sleep(interval)
        tick = last_tick()
        if tick is not None and clock() - tick < interval:
            notifier.notify("WATCHDOG=1")
            if stalled:
                log.info("the pipeline runs again; systemd's watchdog is fed again")
            stalled = False
        elif not stalled:
            stalled = True
            log.error(
                "the pipeline has stopped; systemd's watchdog is no longer fed and will restart the service",
                extra={"fields": {"watchdog_s": notifier.watchdog_s}},
            )
