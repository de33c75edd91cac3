"""Freeze mode: every yielded array becomes read-only, and a write into one gets a note
naming what safegen froze."""

from __future__ import annotations

import collections
import warnings
from time import perf_counter
from types import TracebackType
from typing import Any

import numpy as np

from safegen._config import Settings
from safegen._containers import detach, unprotected_leaves
from safegen._errors import SafegenWarning
from safegen._finding import Finding, Kind
from safegen._fingerprint import bounds
from safegen._frames import hide_safegen_frames, is_safegen, user_stacklevel
from safegen._handling import Handling, report
from safegen._modes._base import _State
from safegen._modes._flat import flat_arrays
from safegen._modes.source import Source, _write_line
from safegen._report import DATASET_FIX, EPOCH_FIX, FIX, ITEM_FIX, epoch_method_name
from safegen._structure import Path, format_path, leaves

__all__ = ["Freeze"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_ndarray = np.ndarray
_COUNT = Handling(None)  # a stopped write is counted; NumPy's ValueError stops the program

# (source name, location, leaf type) already warned about by freeze mode.
_WARNED_UNPROTECTED: set[tuple[str, str, str]] = set()


class Freeze(_State):
    """Freeze mode: every yielded array becomes read-only, and so does each array it views
    that covers exactly the same memory (``x`` behind ``x.reshape(...)`` or ``x.T``);
    each yielded ``dict`` or ``list`` is handed over as a shallow copy of its own type,
    so that a generator refilling one container cannot rebind a batch already out.

    The generator's next write into a buffer it already yielded then raises NumPy's
    ``ValueError: assignment destination is read-only`` at that very line, and
    ``annotate`` adds a note (PEP 678) saying what safegen froze and the fixes. A larger
    array that a yielded view is cut from stays writable, so a generator that fills the
    next slot of a preallocated array is not stopped; and a view made before the freeze
    keeps its own write permission (NumPy checks the flag per array). Check mode sees
    writes through both.
    """

    def __init__(self, settings: Settings, source: Source) -> None:
        super().__init__(settings, source)
        # What the last `window` yields froze, to name the culprit in the note.
        self.frozen: dict[int, tuple[int, Path, np.ndarray]] = {}
        self.recent: collections.deque[list[int]] = collections.deque()

    def process(self, value: Any) -> Any:
        start = perf_counter()
        count = self.count = self.count + 1
        # Only ndarrays can be made read-only: other leaves (bytearray, DataFrame, DLPack
        # tensors) are left as they are (check or copy mode covers them).
        found = leaves(value, foreign=False)
        frozen: list[int] = []
        for path, array in found:
            self._freeze(array, array, count, path, frozen)
            node: Any = array.base
            covered = None
            for _ in range(256):
                if node is None:
                    break
                if isinstance(node, _ndarray):
                    # Freeze a base only if the leaf covers all of its memory: x behind
                    # x.reshape(...) (same bytes, no repeats: decided cheaply) or behind
                    # a sliding window view (decided by the byte ranges).
                    if not (node.nbytes == array.nbytes and 0 not in array.strides):
                        covered = covered or bounds(array)
                        if bounds(node) != covered:
                            break
                    self._freeze(node, array, count, path, frozen)
                node = getattr(node, "base", None)
        self.recent.append(frozen)
        if len(self.recent) > self.settings.window:
            for key in self.recent.popleft():
                self.frozen.pop(key, None)
        # A dict or list cannot be made read-only: the consumer gets a shallow copy of
        # it (same type, same frozen arrays), which the generator's rebinding of its own
        # container cannot reach (see safegen._containers).
        kind = type(value)
        if kind is tuple or kind is list:
            flat = flat_arrays(value)
        elif kind is dict:
            flat = all(type(child) is _ndarray for child in value.values())
        else:
            flat = kind is _ndarray
        if not flat:
            self._warn_unprotected(value, count)
            value = detach(value)
        elif kind is list:
            value = list(value)
        elif kind is dict:
            value = dict(value)
        stats = self.stats
        stats.yields += 1
        stats.arrays += len(found)
        stats.seconds += perf_counter() - start
        return value

    def _warn_unprotected(self, value: Any, count: int) -> None:
        """Warn once per source and type about leaves freeze mode cannot make read-only."""
        for path, leaf in unprotected_leaves(value):
            kind = type(leaf)
            key = (self.source.name, self.source.location, kind.__qualname__)
            if key in _WARNED_UNPROTECTED:
                continue
            _WARNED_UNPROTECTED.add(key)
            where = f" leaf {format_path(path)}" if path else ""
            warnings.warn(
                f"{self.source.where()}: {self.source.kind} #{count}{where} is a "
                f"{kind.__qualname__}, which freeze mode cannot make read-only: it is handed "
                'over unprotected. mode="copy" copies it, and mode="check" reports a change '
                "to it. (Warned once per source and type.)",
                SafegenWarning,
                stacklevel=user_stacklevel(),
            )

    def _freeze(
        self, node: np.ndarray, leaf: np.ndarray, count: int, path: Path, frozen: list[int]
    ) -> None:
        if node.flags.writeable:
            node.flags.writeable = False
            self.frozen[id(node)] = (count, path, leaf)
            frozen.append(id(node))

    def before_epoch_method(self) -> Any:
        """Make the arrays behind the batches still held read-only while the method runs.

        A batch that is a view of ``self.x`` leaves ``self.x`` writable (only the view is
        frozen), so shuffling ``self.x`` in place would go through; for the length of
        the method, every array a recent batch views is read-only too. Returns what was
        frozen, for ``undo_epoch_method``.
        """
        frozen: list[np.ndarray] = []
        for count, path, leaf in list(self.frozen.values()):
            node: Any = leaf.base
            for _ in range(256):
                if node is None:
                    break
                if isinstance(node, _ndarray) and node.flags.writeable:
                    node.flags.writeable = False
                    frozen.append(node)
                    self.frozen[id(node)] = (count, path, leaf)
                node = getattr(node, "base", None)
        return frozen

    def undo_epoch_method(self, token: Any) -> None:
        for node in reversed(token):  # the memory owner first: its views need it writable
            self.frozen.pop(id(node), None)
            try:
                node.flags.writeable = True
            except ValueError:  # pragma: no cover - a base made read-only meanwhile
                pass

    def annotate(self, exc: BaseException, writer: Source | None = None) -> None:
        if not (isinstance(exc, ValueError) and "read-only" in str(exc) and self.count):
            return
        if any(str(note).startswith("safegen:") for note in getattr(exc, "__notes__", ())):
            return  # a guard inside this one (the source's own) already said what it froze
        self.stats.violations += 1  # a write freeze mode stopped
        report(
            Finding(Kind.STOPPED_WRITE, self.source.name, self.source.location, str(exc)),
            _COUNT if self.record is None else Handling(None, record=self.record),
        )
        hide_safegen_frames()
        batch = self.source.kind != "yield"  # a dataset's batch (or a PyTorch item)
        item = self.source.kind
        culprit = self._culprit(exc.__traceback__)
        line = _write_line(exc.__traceback__)
        at = f" at {line}" if line else ""
        if culprit is None:
            what = f"an array it had already {'returned' if batch else 'yielded'}{at}"
        else:
            name, local, (count, path, leaf) = culprit
            where = f"leaf {format_path(path)}" if path else "the array"
            what = (
                f"{name!r} ({local.dtype}, shape {tuple(local.shape)}){at}, which is "
                f"{where} of {item} #{count} or the memory behind it"
            )
        if writer is not None:
            method = epoch_method_name(writer.where())
            exc.add_note(
                f"safegen: {writer.where()} wrote into {what}, while batches returned "
                f"by {self.source.where()} still view that memory. safegen made it "
                f'read-only while {method} ran (mode="freeze") because consumers may still '
                f"hold those batches: without the freeze, they would have changed under "
                f"them. {EPOCH_FIX}"
            )
            return
        exc.add_note(
            f"safegen: {self.source.where()} wrote into {what}. safegen made it "
            'read-only (mode="freeze") because consumers may still hold it: without '
            f"the freeze, that batch would have changed under them. "
            f"{ITEM_FIX if item == 'item' else DATASET_FIX if batch else FIX}"
        )

    def _culprit(
        self, tb: TracebackType | None
    ) -> tuple[str, np.ndarray, tuple[int, Path, np.ndarray]] | None:
        """The innermost local variable (or attribute of a local, ``self.x``) that holds
        (a view of) a frozen array."""
        frames = []
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            if is_safegen(frame):
                continue
            candidates = list(frame.f_locals.items())
            for name, local in list(candidates):
                attributes = getattr(local, "__dict__", None)
                if not isinstance(local, _ndarray) and isinstance(attributes, dict):
                    candidates += [(f"{name}.{key}", value) for key, value in attributes.items()]
            for name, local in candidates:
                node = local
                while isinstance(node, _ndarray):
                    entry = self.frozen.get(id(node))
                    if entry is not None:
                        return name, local, entry
                    node = node.base
        return None
