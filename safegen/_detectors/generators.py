"""The detectors on a guarded generator that runs in forked worker processes.

tf_keras's ``fit(generator, workers=2, use_multiprocessing=True)`` (its
``GeneratorEnqueuer``) forks worker processes that each call ``next()`` on their own copy
of the generator: same code, same position, same copied random states. The copies replay
the same yields, and draw the same "random" numbers.

A guarded generator costs nothing more here in the process that guarded it. When the
process forks, the parent gives each guarded generator's handle a channel
(:func:`open_channel`: a :class:`GeneratorChannel`, which a forked child has a copy of),
and in the child the handle calls a :class:`Watcher` in place of its own step
(:meth:`safegen._handle.Handle.intercept`), which runs the detectors around the child's
first calls and then gives the step back:

* :mod:`~safegen._detectors.random_workers`, with the random states reachable from the
  generator's frame (:func:`~safegen._detectors.random_states.frame_candidates`); in copy
  mode, the reseeding of the child's global states;
* :class:`~safegen._detectors.repeated_batches.ProcessRepeats` (check mode): a batch that
  two worker processes of the generator both yielded.

Nothing is done with ``spawn`` (a generator does not pickle) nor with threads (they share
one generator).
"""

from __future__ import annotations

from typing import Any

from safegen._detectors._base import Detector
from safegen._detectors._sink import Channel
from safegen._detectors.findings import note_reseeded
from safegen._detectors.findings import record as record_findings
from safegen._detectors.random_states import frame_candidates
from safegen._detectors.random_workers import stream_detectors
from safegen._detectors.repeated_batches import ProcessRepeats

__all__ = ["GeneratorChannel", "Watcher", "open_channel"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


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


def open_channel(source: Any, mode: str) -> GeneratorChannel:
    """In the parent, before a fork: the channel of a guarded generator named by
    ``source``, listed in the session summary."""
    channel = GeneratorChannel(source.name, source.location)
    record_findings(channel, mode)
    return channel


class Watcher:
    """A guarded generator's steps in a forked child, until its detectors are done: called
    by the generator's proxy, under its lock, in place of its own step."""

    __slots__ = ("detectors", "handle")

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.detectors: tuple[Detector, ...] | None = None  # made on the first call

    def _make(self) -> tuple[Detector, ...]:
        handle = self.handle
        settings, channel = handle.settings, handle.channel
        found: list[Detector] = list(
            stream_detectors(handle.producer, settings, channel, frame_candidates)
        )
        note_reseeded(channel, settings.mode)
        if settings.mode == "check":
            found.append(ProcessRepeats(settings, channel))
        return tuple(found)

    def __call__(self, proxy: Any, sent: Any, thrown: Any) -> Any:
        """Step the generator (``proxy``'s own step, unwatched) with the detectors
        around the call."""
        if self.detectors is None:
            self.detectors = self._make()
        handle = self.handle
        generator = handle.producer
        for detector in self.detectors:
            detector.before(generator, None)
        handle.release()  # the step itself runs unwatched; finished or failed: no more
        out = type(proxy).__next__(proxy, sent, thrown)
        number = handle.yields
        kept = []
        found: BaseException | None = None
        for detector in self.detectors:  # every one, even after one reported
            try:
                if detector.after(generator, number, handle):
                    kept.append(detector)
            except BaseException as exc:  # noqa: BLE001 - raised below, after the others
                kept.append(detector)
                found = found or exc
        self.detectors = tuple(kept)
        if kept:
            handle.intercept(self)
        if found is not None:
            raise found
        return out
