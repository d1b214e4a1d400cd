"""Latest-request-wins previews: one request in flight per channel, newer requests replace the waiting one,
and replies that are stale when they come back are dropped.

A channel is one stream of previews (set ``a``, set ``b``, the ``plate``). Every request gets a sequence
number. A reply is delivered only when it is newer than the last reply delivered on its channel and not
older than the channel's floor, which ``invalidate`` raises past every request made so far (a new frame,
shot or plate: nothing asked before it may show). While a slider moves, each reply that comes back is
newer than the one on screen, so the preview follows the slider; requests that were overtaken while
waiting are never sent.

``LatestWins`` is the bookkeeping (pure, thread-safe); ``PreviewRequester`` runs the fetches on worker
threads and delivers replies on the Qt thread through a signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .qt import QtCore

_LOG = logging.getLogger(__name__)


@dataclass
class _Channel:
    issued: int = 0      # the newest sequence number handed out
    delivered: int = 0   # the newest sequence number delivered
    floor: int = 0       # replies below this are stale
    busy: bool = False   # a request is in flight
    waiting: tuple[int, Any] | None = None  # the newest request not yet sent


class LatestWins:
    """Sequence numbers and the stale rule of each channel (see the module docstring)."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.Lock()

    def _channel(self, name: str) -> _Channel:
        return self._channels.setdefault(name, _Channel())

    def submit(self, channel: str, job: Any) -> tuple[int, tuple[int, Any] | None]:
        """Register ``job``; returns its sequence number and what to send now: ``(seq, job)`` when the
        channel is idle, else None (it waits, replacing any older waiting job)."""
        with self._lock:
            c = self._channel(channel)
            c.issued += 1
            if c.busy:
                c.waiting = (c.issued, job)
                return c.issued, None
            c.busy = True
            return c.issued, (c.issued, job)

    def finish(self, channel: str, seq: int) -> tuple[bool, tuple[int, Any] | None]:
        """The reply of ``seq`` came back: whether to deliver it, and the waiting job to send next."""
        with self._lock:
            c = self._channel(channel)
            fresh = seq > c.delivered and seq >= c.floor
            if fresh:
                c.delivered = seq
            following, c.waiting = c.waiting, None
            c.busy = following is not None
            return fresh, following

    def invalidate(self, channel: str | None = None) -> None:
        """Make every reply to a request made so far stale (on ``channel``, or all), and drop waiting jobs."""
        with self._lock:
            for name, c in self._channels.items():
                if channel is None or name == channel:
                    c.floor = c.issued + 1
                    c.waiting = None

    def latest(self, channel: str) -> int:
        with self._lock:
            return self._channel(channel).issued


class PreviewRequester(QtCore.QObject):
    """Runs ``fetch(job)`` on worker threads, latest request winning per channel.

    Signals (delivered on the thread that owns this object):
        replied(channel, seq, result): a fresh reply.
        failed(channel, seq, message): the fetch raised; the message is one line.
        dropped(channel, seq): a stale reply (for tests and the status line).

    Args:
        fetch: the blocking call, e.g. a gRPC Preview; called on a worker thread.
        workers: threads (channels run in parallel; one channel never runs two requests at once).
    """

    replied = QtCore.Signal(str, int, object)
    failed = QtCore.Signal(str, int, str)
    dropped = QtCore.Signal(str, int)
    _done = QtCore.Signal(str, int, object, str)

    def __init__(self, fetch: Callable[[Any], Any], workers: int = 3, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._fetch = fetch
        self._book = LatestWins()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facebridge-preview")
        self._closed = False
        self._done.connect(self._on_done, QtCore.Qt.ConnectionType.QueuedConnection)

    def submit(self, channel: str, job: Any) -> int:
        """Ask for ``job`` on ``channel``; returns its sequence number."""
        seq, now = self._book.submit(channel, job)
        if now is not None:
            self._start(channel, *now)
        return seq

    def invalidate(self, channel: str | None = None) -> None:
        self._book.invalidate(channel)

    def latest(self, channel: str) -> int:
        return self._book.latest(channel)

    def _start(self, channel: str, seq: int, job: Any) -> None:
        if self._closed:
            return
        self._pool.submit(self._run, channel, seq, job)

    def _run(self, channel: str, seq: int, job: Any) -> None:
        try:
            result, error = self._fetch(job), ""
        except Exception as exc:  # noqa: BLE001 - reported on the Qt thread as a one-line message
            _LOG.debug("preview %s #%d failed", channel, seq, exc_info=True)
            result, error = None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not self._closed:
            self._done.emit(channel, seq, result, error)

    def _on_done(self, channel: str, seq: int, result: object, error: str) -> None:
        fresh, following = self._book.finish(channel, seq)
        if following is not None:
            self._start(channel, *following)
        if not fresh:
            self.dropped.emit(channel, seq)
        elif error:
            self.failed.emit(channel, seq, error)
        else:
            self.replied.emit(channel, seq, result)

    def close(self) -> None:
        """Stop delivering; in-flight fetches finish on their threads (not waited for)."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
