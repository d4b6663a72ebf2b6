"""The seam between the relay and the app's /healthz and /metrics.

The app makes one :class:`RelayMonitor`; whoever starts the relay attaches its counters once its
listeners are up and detaches them when it stops::

    monitor.attach(counters=runner.relay.counters.snapshot, running=lambda: runner.running)

The relay runs on its own thread (relay/thread.py) and /healthz and /metrics call these on the app's: reading
plain int attributes (``Counters.snapshot``) from another thread is safe under CPython's GIL, each read whole;
a snapshot may be a few packets apart between two counters, which metrics tolerate.

Nothing here imports the relay: counters are a plain ``{name: int}`` mapping (``turn.counters.Counters``
snapshot keys), so the relay package stays independent of the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

RelayState = Literal["ok", "off", "down", "not running", "loopback only"]


class RelayMonitor:
    """What the app knows about its relay: whether it is up, and its counters."""

    def __init__(self, enabled: bool, loopback_only: bool = False) -> None:
        """``loopback_only``: the relay is advertised on loopback only while serving the LAN
        (:func:`opencall.relay.settings.loopback_only`), so phones cannot reach it even while it runs."""
        self.enabled = enabled
        self.loopback_only = loopback_only
        self._counters: Callable[[], Mapping[str, int]] | None = None
        self._running: Callable[[], bool] | None = None

    def attach(self, counters: Callable[[], Mapping[str, int]], running: Callable[[], bool] | None = None) -> None:
        """Called once the relay's listeners are up: ``counters()`` reads its totals, ``running()`` its health."""
        self._counters, self._running = counters, running

    def detach(self) -> None:
        """Called when the relay stops."""
        self._counters = self._running = None

    def state(self) -> RelayState:
        """``off`` when turn.enabled is false, ``ok`` when attached and running, ``down`` when attached but
        not running, ``not running`` when enabled but never attached (or stopped), ``loopback only`` when it
        runs but is advertised on loopback only."""
        if not self.enabled:
            return "off"
        if self._counters is None:
            return "not running"
        if self._running is not None and not self._running():
            return "down"
        if self.loopback_only:
            return "loopback only"
        return "ok"

    def counters(self) -> Mapping[str, int] | None:
        """The relay's counters, or None while no relay is attached."""
        return dict(self._counters()) if self._counters is not None else None
