"""The detectors on a guarded generator that runs in forked worker processes.

tf_keras's ``fit(generator, workers=2, use_multiprocessing=True)`` (its
``GeneratorEnqueuer``) forks worker processes that each call ``next()`` on their own copy
of the generator: same code, same position, same copied random states. The copies replay
the same yields, and draw the same "random" numbers.

A guarded generator costs nothing more here in the process that guarded it: it is only
listed (:func:`watch`, a weak reference). When the process forks, the parent gives each
listed generator a channel (:class:`GeneratorChannel`, kept on the proxy: a forked child
has a copy of it), and the child swaps each one's send function (the proxy's
``_self_send``, called under its lock) for a :class:`_Watcher`, which runs the detectors
around the child's first calls and then puts the plain function back:

* :mod:`~safegen._detectors.random_streams`, with the random states reachable from the
  generator's frame (:func:`~safegen._detectors.random_streams.frame_candidates`); in copy
  mode, the reseeding of the child's global states;
* :class:`~safegen._detectors.repeated_batches.ProcessRepeats` (check mode): a batch that
  two worker processes of the generator both yielded.

Nothing is done with ``spawn`` (a generator does not pickle) nor with threads (they share
one generator).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from safegen._detectors._base import Detector
from safegen._detectors._sink import Channel
from safegen._detectors.findings import note_reseeded
from safegen._detectors.findings import record as record_findings
from safegen._detectors.random_streams import frame_candidates, stream_detectors
from safegen._detectors.repeated_batches import ProcessRepeats

__all__ = ["GeneratorChannel", "watch"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_CHANNEL = "_self_safegen_channel"
# The guarded generators (proxies) of this process, given a channel at a fork.
_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()  # taken in the process that guards (never at fork in the child)


class GeneratorChannel(Channel):
    """A guarded generator's channel: its yields have no index, and the advice differs."""

    __slots__ = ()

    indexed = False
    unit = "yields"
    hint = (
        "tf_keras runs a copy of the generator, random states included, in each worker "
        "process (use_multiprocessing=True): give fit a keras.utils.Sequence (a PyDataset "
        "in Keras 3), or use_multiprocessing=False."
    )


def watch(proxy: Any) -> None:
    """List a guarded generator (a ``_SerializedGenerator``), for the forks to come."""
    if proxy._self_state.settings.mode != "off":
        with _lock:
            _WATCHED.add(proxy)


def _before_fork() -> None:
    """In the parent: a channel for every listed generator that has none yet."""
    with _lock:
        proxies = list(_WATCHED)
    for proxy in proxies:
        if getattr(proxy, _CHANNEL, None) is None:
            source = proxy._self_state.source
            channel = GeneratorChannel(source.name, source.location)
            setattr(proxy, _CHANNEL, channel)
            record_findings(channel, proxy._self_state.settings.mode)


def _after_fork_in_child() -> None:
    """In the child: the first calls of each generator copied here are watched. (No
    object made but the watchers, no lock taken: another thread of the parent may have
    held one.)"""
    for proxy in list(_WATCHED):
        if getattr(proxy, _CHANNEL, None) is not None:
            proxy._self_send = _Watcher(proxy)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


class _Watcher:
    """A generator's send function in a forked child, until its detectors are done."""

    __slots__ = ("detectors", "proxy", "send")

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        self.send = proxy.__wrapped__.send
        self.detectors: tuple[Detector, ...] | None = None  # made on the first call

    def _make(self) -> tuple[Detector, ...]:
        state = self.proxy._self_state
        channel: Channel = getattr(self.proxy, _CHANNEL)
        found: list[Detector] = list(
            stream_detectors(state.producer, state.settings, channel, frame_candidates)
        )
        note_reseeded(channel, state.settings.mode)
        if state.settings.mode == "check":
            found.append(ProcessRepeats(state.settings, channel))
        return tuple(found)

    def __call__(self, value: Any) -> Any:
        """Send ``value`` (under the proxy's lock) with the detectors around the call."""
        if self.detectors is None:
            self.detectors = self._make()
        state = self.proxy._self_state
        generator = state.producer
        for detector in self.detectors:
            detector.before(generator, None)
        try:
            out = self.send(value)
        except BaseException:
            self.proxy._self_send = self.send  # finished or failed: watch no more
            raise
        number = state.stats.yields
        kept = []
        found: BaseException | None = None
        for detector in self.detectors:  # every one, even after one reported
            try:
                if detector.after(generator, number, state):
                    kept.append(detector)
            except BaseException as exc:  # noqa: BLE001 - raised below, after the others
                kept.append(detector)
                found = found or exc
        self.detectors = tuple(kept)
        if not kept:
            self.proxy._self_send = self.send
        if found is not None:
            raise found
        return out
