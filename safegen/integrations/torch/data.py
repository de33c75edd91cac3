"""``safegen.enable()`` for ``torch.utils.data``: every ``DataLoader`` guards its dataset.

While enabled, iterating a ``DataLoader`` (``iter(loader)``, which every ``for batch in
loader`` does at each epoch) first guards the datasets behind it in place, as
``safegen.guard(dataset)`` would: the user's own datasets, also inside torch's wrappers
(``Subset``, ``ConcatDataset``, ``ChainDataset``, ``StackDataset``); torch's own datasets
(``TensorDataset``) are left alone. A dataset already guarded keeps its own guard.
``disable()`` gives the datasets guarded here their classes back.

An error safegen raised in a worker process reaches the parent as torch rebuilds it
(``Caught AliasingError in DataLoader worker process 0. Original Traceback ...``); the
loader's iterator re-raises it as safegen's own error, with safegen's message, and counts
it in the session (the worker counts only the findings it did not raise there, through
the dataset's channel).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from safegen import _config, _enable, _session
from safegen._errors import SafegenError
from safegen._frames import hide_safegen_frames
from safegen._sources import guard_source, is_guarded
from safegen._sources.datasets import unguard
from safegen._sources.torch_data import datasets_of
from safegen.integrations._patching import _IN_TEXT, _KINDS, _SIGNATURES, patch

__all__ = ["install", "rebuilt_error"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class _Guarded:
    """The datasets guarded here, with the class each had (to undo it at ``disable()``)."""

    def __init__(self) -> None:
        self.classes: weakref.WeakKeyDictionary[Any, type] = weakref.WeakKeyDictionary()

    def guard(self, loader: Any) -> None:
        enabled = _enable.options()
        if enabled is None or _config.disabled():
            return
        for dataset in datasets_of(getattr(loader, "dataset", None), own_only=True):
            if is_guarded(dataset):
                continue
            saved = type(dataset)
            guard_source(dataset, enabled.options)
            try:
                self.classes[dataset] = saved
            except TypeError:  # not weakly referenceable: stays guarded
                pass

    def undo(self) -> None:
        for dataset, saved in list(self.classes.items()):
            unguard(dataset, saved)
        self.classes.clear()


def rebuilt_error(error: BaseException) -> SafegenError | None:
    """The safegen error behind ``error`` as torch rebuilt it from a worker process (a
    safegen error whose message starts with torch's ``"Caught ..."``), rebuilt from
    safegen's own message; ``None`` for any other error."""
    text = str(error)
    if not isinstance(error, SafegenError) or not text.startswith("Caught "):
        return None
    found = _IN_TEXT.search(text)
    if found is None:
        return None
    kind, message = found["kind"], found["message"].strip()
    if not any(signature in message for signature in _SIGNATURES[kind]):
        return None
    return _KINDS[kind](message)


def install() -> Callable[[], None]:
    """Patch ``DataLoader.__iter__`` (guard its datasets) and the loader iterators'
    ``__next__`` (safegen's errors from worker processes come out as themselves);
    returns the undo."""
    from torch.utils.data import dataloader

    guarded = _Guarded()

    def iter_(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        guarded.guard(instance)
        return wrapped(*args, **kwargs)

    def next_(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            return wrapped(*args, **kwargs)
        except SafegenError as error:
            found = rebuilt_error(error)
            if found is None:
                raise
            _session.record_remote(found)  # raised in a worker process: count it here
            found.add_note(
                "(re-raised by safegen from the error torch rebuilt in the main process "
                "out of a DataLoader worker's; that error is kept as __context__, not shown)"
            )
            hide_safegen_frames()
            raise found from None

    undos = [
        patch(dataloader.DataLoader, "__iter__", iter_),
        patch(dataloader._BaseDataLoaderIter, "__next__", next_),
    ]

    def undo() -> None:
        for step in reversed(undos):
            step()
        guarded.undo()

    return undo
