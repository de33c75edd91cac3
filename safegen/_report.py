"""The report of one array that changed after it was yielded."""

from __future__ import annotations

import dataclasses
import sys

from safegen import _frameworks as frameworks
from safegen._finding import Kind

__all__ = ["AliasingReport"]

FIX = (
    "Allocate the array inside the loop, yield a copy (np.copy(x)), "
    'or use @safegen.guard(mode="copy").'
)
DATASET_FIX = (
    "Allocate the batch inside __getitem__, return copies of the arrays it fills "
    "(np.copy(...)), "
    'or use @safegen.guard(mode="copy").'
)
ITEM_FIX = (
    "A DataLoader gathers every item of a batch before default_collate stacks them, so "
    "with a reused buffer every row of the batch is the last item. Allocate the arrays "
    "inside __getitem__, return copies of the arrays it fills (np.copy(...), "
    'tensor.clone()), or use safegen.guard(dataset, mode="copy").'
)
EPOCH_FIX = (
    "Build new arrays there instead of writing into the old ones (self.x = self.x[order], "
    "not np.random.shuffle(self.x)), return copies from __getitem__ "
    '(self.x[i:j].copy()), or use @safegen.guard(mode="copy").'
)


CONTAINER_FIX = (
    "Build a new {kind} for every yield (inside the loop), yield a copy ({kind}(...) of it), "
    'or use @safegen.guard(mode="copy") or mode="freeze".'
)


def _consumers(item: str = "batch") -> str:
    """Who may still hold a batch (or a PyTorch dataset's item): the frameworks'
    read-ahead when one is loaded."""
    if item == "item":
        return " (the DataLoader, until default_collate stacks the batch)"
    if frameworks.loaded():
        return " (Keras peeks batches ahead, tf.data prefetches, worker threads run ahead)"
    return ""


def epoch_method_name(writer: str) -> str:
    """``"Batches.on_epoch_end() at data.py:40"`` -> ``"on_epoch_end"``."""
    return writer.split("()", 1)[0].rsplit(".", 1)[-1]


@dataclasses.dataclass(frozen=True)
class AliasingReport:
    """What changed, where, and when; given to an ``on_violation`` callable.

    Attributes:
        source: the guarded generator's qualified name with ``()``, e.g. ``"batches()"``.
        location: ``"file.py:12"`` where the generator is defined, or ``""`` if unknown.
        path: the leaf's place in the yielded structure, e.g. ``"[0]"`` or ``"['image']"``
            (``""`` when the yielded value is the array itself).
        dtype: the array's dtype, as a string.
        shape: the array's shape.
        changed_yield: the number (from 1) of the yield whose array changed.
        last_seen_unchanged: the number of the latest yield after which it was still
            unchanged (equal to ``changed_yield`` when it was not verified since).
        detected_at: the number of the yield after which the change was found.
        kind: ``"yield"`` for generators and iterators, ``"item"`` for PyTorch datasets,
            ``"batch"`` for Keras datasets, whose
            ``__getitem__`` results are numbered in the order they were returned.
        process: the name of the worker process that found it (each worker numbers its
            own batches), or ``""`` in the main process.
        attributed: ``True`` when the generator handed out the changed memory again (the
            generator rewrote a buffer it had yielded), or when the change happened while
            a dataset's ``writer`` method ran; ``False`` when the change was found
            otherwise (as its yield left the window, at exhaustion, or by
            ``verify_all``), so that the writer is unknown: the generator through a
            reference it kept, the consumer, or TensorFlow (see the message).
        writer: for a dataset, the epoch method during which the array changed, with
            its location (``"Batches.on_epoch_end() at data.py:40"``), else ``""``.
        yield_location: ``"file.py:9"``, the ``yield`` at which the generator handed
            out the changed memory again (where to look), or ``""`` if unknown.
        made_by: when the guarded callable is a factory that returned the generator,
            that factory and its location (``"make() at data.py:1"``), else ``""``.
        container: for a reused container (a ``dict`` or ``list`` yielded again after
            a key or index in it was rebound), its type name, else ``""``; ``path`` is
            then the container's place in the yield, and ``dtype`` and ``shape`` are
            empty.
        rebound: for a reused container, the keys or indices rebound, e.g. ``"key 'x'"``
            (``""`` for a list that only grew or shrank).
        lengths: for a reused list that grew or shrank, its length before and after,
            else ``()``.
        same_array_yield: when the change was pinned on the generator because it had
            since yielded another view of the same array (yield number), else 0.

    Example:
        >>> import safegen
        >>> found = []
        >>> @safegen.guard(on_violation=found.append)
        ... def batches():
        ...     x = np.zeros(2)
        ...     while True:
        ...         x += 1
        ...         yield x
        >>> import numpy as np
        >>> it = batches(); _ = next(it); _ = next(it)
        >>> found[0].changed_yield, found[0].detected_at
        (1, 2)
    """

    source: str
    location: str
    path: str
    dtype: str
    shape: tuple[int, ...]
    changed_yield: int
    last_seen_unchanged: int
    detected_at: int
    kind: str = "yield"
    process: str = ""
    attributed: bool = True
    writer: str = ""
    yield_location: str = ""
    made_by: str = ""
    container: str = ""
    rebound: str = ""
    same_array_yield: int = 0
    lengths: tuple[int, ...] = ()

    @property
    def finding_kind(self) -> Kind:
        """The kind of finding it describes: a changed array, or a reused container."""
        return Kind.REUSED_CONTAINER if self.container else Kind.CHANGED_ARRAY

    @property
    def message(self) -> str:
        """The full, human-readable message (first line: what, where, when)."""
        where = f"{self.source} at {self.location}" if self.location else self.source
        if self.made_by:
            where += f" (returned by {self.made_by})"
        if self.process:
            where += f" (in worker process {self.process}, which numbers its own batches)"
        leaf = f"leaf {self.path} " if self.path else "array "
        if self.kind == "batch":
            item, produced, writer, fix = "batch", "returned", "dataset", DATASET_FIX
        elif self.kind == "item":  # a PyTorch dataset's item
            item, produced, writer, fix = "item", "returned", "dataset", ITEM_FIX
        else:
            item, produced, writer, fix = "yield", "produced", "generator", FIX
        if self.last_seen_unchanged == self.detected_at - 1:
            when = f"while {item} #{self.detected_at} was being {produced}"
        elif self.last_seen_unchanged == self.changed_yield:
            when = f"before {item} #{self.detected_at} was {produced}"
        else:
            when = (
                f"after {item} #{self.last_seen_unchanged} and before {item} "
                f"#{self.detected_at} was {produced}"
            )
        if self.container:
            return self._container_message(where, item)
        if self.writer:
            method = epoch_method_name(self.writer)
            return (
                f"{self.writer}: batch #{self.changed_yield} {leaf}({self.dtype}, shape "
                f"{self.shape}), returned by {where}, changed while {method} ran (after "
                f"batch #{self.detected_at - 1}). {method} writes in place into an array that "
                "__getitem__ handed out views of, and every consumer still holding one of "
                "those batches (a prefetch queue, a worker, a callback that kept one) now "
                "sees other data. "
                f"{EPOCH_FIX}"
            )
        if not self.attributed:
            writers = [f"the {writer} through a reference it kept", "your own code"]
            if "tensorflow" in sys.modules:
                writers.append(
                    "TensorFlow, which may write into 64-byte-aligned NumPy arrays that it "
                    "wrapped without copying (seen under tf.distribute.MirroredStrategy)"
                )
            who = ", ".join(writers[:-1]) + " or " + writers[-1]
            handed = "yielded" if item == "yield" else "returned"
            return (
                f"{where}: {item} #{self.changed_yield} {leaf}({self.dtype}, shape "
                f"{self.shape}) changed after it was {handed}, {when}, but the {writer} "
                "has not handed out that memory again, so safegen cannot tell who wrote "
                f"into it: {who}. It is harmless if nothing uses that array again. If your "
                "code changes the batches it receives in place (batch /= 255 in the "
                "training loop or in a map function), compute a new array instead "
                f"(batch = batch / 255) or copy the batch first. If the {writer} edits what "
                f"it already {handed}: {fix[0].lower()}{fix[1:]}"
            )
        if self.same_array_yield:
            if self.last_seen_unchanged != self.detected_at - 1:
                # Found at that yield; changed at some point since it was last seen.
                when = f"found when {item} #{self.detected_at} was {produced}"
            if self.same_array_yield == self.detected_at:
                cut = f"{when}, which is cut"
            else:
                cut = f"{when}, and {item} #{self.same_array_yield} is cut"
            return (
                f"{where}: {item} #{self.changed_yield} {leaf}({self.dtype}, shape "
                f"{self.shape}) changed after it was "
                f"{'yielded' if item == 'yield' else 'returned'}, {cut} from the same "
                f"array: the {writer} writes "
                "into the array its batches are views of (an in-place shuffle, "
                "x[:] = x[order], does), and every consumer still holding that "
                f"{'item' if item == 'item' else 'batch'}{_consumers(item)} now sees other "
                "data. Shuffle into a new array "
                "(x = x[order]), hand out copies (x[i:j].copy()), or use "
                '@safegen.guard(mode="copy").\nIf your own code modifies the batches it '
                "receives in place, that is reported too: copy the batch before changing it."
            )
        caveat = (
            "\nIf your own code modifies the batches it receives in place, that is "
            "reported too: copy the batch before changing it."
        )
        if self.yield_location:
            when += f" (the yield at {self.yield_location} handed that memory out again)"
            caveat = ""  # the generator's own yield handed the memory out again
        return (
            f"{where}: {item} #{self.changed_yield} {leaf}({self.dtype}, shape "
            f"{self.shape}) changed after it was {'yielded' if item == 'yield' else 'returned'}"
            f", {when}. The {writer} writes into a buffer it already handed out, and every "
            f"consumer still holding that {'item' if item == 'item' else 'batch'}"
            f"{_consumers(item)} now sees other data. {fix}"
            f"{caveat}"
        )

    def _container_message(self, where: str, item: str) -> str:
        what = f"leaf {self.path} (a {self.container})" if self.path else f"(a {self.container})"
        again = f" (at {self.yield_location})" if self.yield_location else ""
        return (
            f"{where}: {item} #{self.changed_yield} {what} was yielded again by "
            f"{item} #{self.detected_at}{again}, after {self._changes()}. The "
            f"generator refills one {self.container} and yields it every time, so every "
            f"consumer still holding an earlier batch{_consumers()} sees the latest values "
            f"instead of its own. {CONTAINER_FIX.format(kind=self.container)}"
        )

    def _changes(self) -> str:
        """What changed in a reused container: ``"keys 'x', 'y' in it were rebound"``,
        ``"the list grew from 1 to 2 items"``, or both."""
        changes = []
        if self.rebound:
            plural = self.rebound.startswith(("keys", "indices"))
            changes.append(f"{self.rebound} in it {'were' if plural else 'was'} rebound")
        if len(self.lengths) == 2:
            before, after = self.lengths
            grew = "grew" if after > before else "shrank"
            size = f"{after} item{'' if after == 1 else 's'}"
            changes.append(f"the {self.container} {grew} from {before} to {size}")
        return " and ".join(changes)

    def __str__(self) -> str:
        return self.message


AliasingReport.__module__ = "safegen"
