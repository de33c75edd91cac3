"""The call check of a model's ``fit`` for splits that lie, and for a generator's inputs
shuffled apart from its targets (Keras 3 and tf_keras alike).

* ``fit(x, y, validation_split=f)`` with class labels: a validation slice of one class
  (or missing most classes), decided before training
  (:func:`safegen._detectors.splits.one_class_split`).
* ``fit(..., validation_data=...)``: validation rows whose inputs are training rows
  (:func:`safegen._detectors.splits.overlap`). Arrays are compared before training.
  A generator or ``PyDataset`` (guarded by ``enable()``) is read as Keras reads it: the
  row keys of its first epoch's batches are collected (a
  :class:`~safegen._detectors.rows.RowCollector` on its handle, or a
  :class:`~safegen._detectors.rows.Tap` on a generator) and compared when ``fit``
  returns. A ``tf.data.Dataset`` on either side is not read: that would take a second
  pass over the user's pipeline.
* ``fit(generator, steps_per_epoch=n, epochs=e)``, ``e >= 2``: the generator's yields
  feed a :class:`~safegen._detectors.pairing.Pairing` detector, epochs of ``n`` yields (a
  ``PyDataset`` gets one from its handle, ``safegen._detectors.dataset_detectors``). One
  epoch has nothing to compare: the generator is then not tapped.

Rows of worker processes (``use_multiprocessing=True``) are not collected: each worker
has its own copy of the source, and the overlap is then left out.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from safegen._detectors.pairing import Pairing
from safegen._detectors.rows import BatchFeed, RowCollector, Tap, leaves, row_keys
from safegen._detectors.splits import class_labels, one_class_split, overlap
from safegen._finding import Finding, Kind
from safegen._frames import user_line
from safegen._handle import handle_of
from safegen.integrations._calls import Call, Finish

__all__ = ["check"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# Rows of arrays hashed at most, per side (about 0.4 s for a million small rows); larger
# arrays are left out.
MAX_ROWS = 2_000_000


def check(call: Call) -> Finish | None:
    """At ``fit``: the one-class split, the validation overlap, and the pairing of a
    generator's inputs and targets."""
    if call.method != "fit":
        return None
    arguments = call.arguments
    where = user_line()
    x = arguments.get("x")
    validation = arguments.get("validation_data")
    fraction = arguments.get("validation_split") or 0.0
    if validation is None and fraction and isinstance(fraction, (int, float)):
        _one_class(call, arguments.get("y"), float(fraction), where)
    feeds = _Feeds()
    compare = None
    if validation is not None:
        compare = _overlap(call, x, validation, arguments, where, feeds)
    handle = handle_of(x)
    steps = arguments.get("steps_per_epoch")
    epochs = arguments.get("epochs", 1)
    initial = arguments.get("initial_epoch", 0)
    several = isinstance(epochs, int) and isinstance(initial, int) and epochs - initial >= 2
    if _is_generator(handle) and isinstance(steps, int) and steps > 0 and several:
        name, location = handle.source.name, handle.source.location

        def emit(finding: Finding) -> None:
            call.report(finding)

        feeds.add(handle, x, Pairing(name, location, emit, steps=steps))
    stop = feeds.start()
    if stop is None and compare is None:
        return None

    def finish() -> None:
        if stop is not None:
            stop()
        if compare is not None:
            compare()

    return finish


def _is_generator(handle: Any) -> bool:
    """Whether ``handle`` is a guarded generator's (or iterator's), in this process."""
    return (
        handle is not None
        and not hasattr(handle, "attach")
        and hasattr(handle, "intercept")
        and getattr(handle, "producer", None) is not None
    )


class _Feeds:
    """The feeds of each guarded source, started together (one tap per generator)."""

    def __init__(self) -> None:
        self.sources: dict[int, tuple[Any, Any, list[BatchFeed]]] = {}

    def add(self, handle: Any, source: Any, feed: BatchFeed) -> None:
        self.sources.setdefault(id(handle), (handle, source, []))[2].append(feed)

    def start(self) -> Finish | None:
        """Feed them; returns the function that stops it all, or ``None``."""
        stops: list[Finish] = []
        for handle, source, feeds in self.sources.values():
            if hasattr(handle, "attach"):  # a dataset's handle
                for feed in feeds:
                    handle.attach(source, feed)
                    stops.append(functools.partial(handle.detach, feed))
            else:
                stop = Tap.install(handle, feeds)
                if stop is not None:
                    stops.append(stop)
        if not stops:
            return None

        def stop_all() -> None:
            for stop in stops:
                stop()

        return stop_all


def _one_class(call: Call, y: Any, fraction: float, where: str) -> None:
    labels = class_labels(y)
    if labels is None:
        return
    source = f"fit(validation_split={fraction:g})"
    call.checked(source, where)
    found = one_class_split(labels, fraction)
    if found is not None:
        call.report(
            Finding(
                Kind.ONE_CLASS_SPLIT,
                source,
                where,
                found.message(f"{source} at {where}" if where else source),
                group=f"{Kind.ONE_CLASS_SPLIT.key}:{where}",
            )
        )


class _Side:
    """One side of the overlap: its keys now (arrays), or a collector fed as Keras reads."""

    def __init__(self, data: Any, steps: Any) -> None:
        self.keys: np.ndarray | None = None
        self.rows = 0
        self.sampled = False
        self.collector: RowCollector | None = None
        self.handle: Any = None
        self.source: Any = data
        arrays = leaves(data)
        if arrays is not None:
            self.name = f"arrays of {arrays[0].shape[0]} rows"
            if arrays[0].shape[0] > MAX_ROWS:
                return
            found = row_keys(arrays)
            if found is not None:
                self.keys = found[1]
                self.rows = arrays[0].shape[0]
                self.sampled = found[0] is not None
            return
        handle = handle_of(data)
        if handle is None or not hasattr(handle, "settings"):
            return
        self.name = handle.source.name if handle.source is not None else type(data).__name__
        if hasattr(handle, "attach") or _is_generator(handle):
            limit = steps if isinstance(steps, int) and steps > 0 else None
            # A dataset is read by index (each once); a generator's first epoch.
            self.collector = RowCollector(None if hasattr(handle, "attach") else limit)
            self.handle = handle

    @property
    def readable(self) -> bool:
        return self.keys is not None or self.collector is not None

    def result(self) -> tuple[np.ndarray, int, bool] | None:
        if self.keys is not None:
            return self.keys, self.rows, self.sampled
        collector = self.collector
        if collector is None or not collector.complete or not collector.rows:
            return None
        keys = collector.all_keys()
        return keys, collector.rows, collector.sampled < collector.rows


def _overlap(
    call: Call, x: Any, validation: Any, arguments: Any, where: str, feeds: _Feeds
) -> Finish | None:
    """Compare now (arrays on both sides), or add the collectors to ``feeds`` and return
    the comparison to run when ``fit`` returned."""
    inputs = validation[0] if isinstance(validation, (tuple, list)) else validation
    training = _Side(x, arguments.get("steps_per_epoch"))
    held_out = _Side(inputs, arguments.get("validation_steps"))
    if not (training.readable and held_out.readable):
        return None
    source = "fit(validation_data=...)"
    call.checked(source, where)

    def compare() -> None:
        train, val = training.result(), held_out.result()
        if train is None or val is None:
            return
        found = overlap(
            train[0],
            val[0],
            validation_rows=val[1],
            training_rows=train[1],
            sampled=train[2] or val[2],
        )
        if found.found:
            head = f"{source} at {where}" if where else source
            call.report(
                Finding(
                    Kind.VALIDATION_OVERLAP,
                    source,
                    where,
                    found.message(head, training.name, held_out.name),
                    group=f"{Kind.VALIDATION_OVERLAP.key}:{where}",
                )
            )

    if training.collector is None and held_out.collector is None:
        compare()  # arrays on both sides: before training
        return None
    for side in (training, held_out):
        if side.collector is not None:
            feeds.add(side.handle, side.source, side.collector)
    return compare
