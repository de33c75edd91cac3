"""The input-scale check: inputs at ``predict``/``evaluate`` on another scale than at ``fit``.

A call check (:mod:`safegen.integrations._calls`) named in each Keras integration's
``CHECKS``, and the public :func:`check_inputs`. What it reads:

* ``fit``: per model input, a sample of what it trains on, kept per model (weakly) as a
  :class:`~safegen._detectors.input_scale.Range`: arrays and tensors given to ``fit``
  (rows evenly spaced, at most :data:`~safegen._detectors.input_scale.MAX_VALUES` values
  per input), or the first :data:`BATCHES` batches of a guarded generator or iterator
  (watched through its handle, :meth:`safegen._handle.Handle.intercept`, as they are
  yielded: no second pass). Several ``fit`` calls widen the range. ``validation_data``
  arrays are compared with it at once.
* ``predict``/``evaluate``: the inputs are sampled the same way and compared
  (:func:`~safegen._detectors.input_scale.compare`): arrays before the call (so that the
  error comes before the predictions), a generator's first batches after the call
  returned.

Not covered: a ``tf.data.Dataset`` and a ``PyDataset`` (reading them again would be a
second pass over the user's data, with its random augmentation; their batches are made
where safegen does not see them whole), generators run in worker processes, and the
model's ``__call__`` (hot in training loops). A model never fit under
``safegen.enable()`` has nothing to compare with: nothing is reported.

Framework-free: the model's input names are read from its attributes.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from safegen._detectors.input_scale import MAX_VALUES, InputScaleReport, Range, Sample, compare
from safegen._finding import Finding
from safegen._frames import user_line
from safegen._handle import Tap, handle_of
from safegen._handling import Handling, report_all

__all__ = ["BATCHES", "check", "check_inputs", "trained_ranges"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# The batches of a generator watched per call.
BATCHES = 8

Key = int | str

# What each model was fit on, per input key (weak keys: a model dropped is forgotten).
_RECORDS: weakref.WeakKeyDictionary[Any, dict[Key, Range]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def trained_ranges(model: Any) -> dict[Key, Range]:
    """What ``model`` was fit on under ``safegen.enable()``, per input (position, or name
    for dict inputs); empty when nothing was recorded."""
    try:
        return dict(_RECORDS.get(model, {}))
    except TypeError:
        return {}


def _remember(model: Any, ranges: dict[Key, Range]) -> None:
    if not ranges:
        return
    with _lock:
        try:
            record = _RECORDS.setdefault(model, {})
        except TypeError:  # not weakly referable
            return
        for key, found in ranges.items():
            earlier = record.get(key)
            record[key] = found if earlier is None else earlier.union(found)


# -- The inputs of a call ---------------------------------------------------------------


def _array_like(value: Any) -> bool:
    return hasattr(value, "shape") and (hasattr(value, "dtype") or hasattr(value, "dtypes"))


def _leaves(x: Any) -> dict[Key, Any] | None:
    """The arrays of ``x`` by input key, or ``None`` when ``x`` is not arrays (a
    generator, a dataset)."""
    if _array_like(x):
        return {0: x}
    found: dict[Key, Any] = {}
    if isinstance(x, dict):
        found.update((str(k), v) for k, v in x.items() if _array_like(v))
    elif isinstance(x, (list, tuple)):
        found.update((i, v) for i, v in enumerate(x) if _array_like(v))
    return found or None


def _unpack(batch: Any) -> Any:
    """``x`` of a batch, as Keras unpacks ``(x,)``, ``(x, y)``, ``(x, y, sample_weight)``."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if isinstance(batch, tuple) and 1 <= len(batch) <= 3:
        return batch[0]
    return batch


def _input_names(model: Any) -> list[str]:
    try:
        inputs = model.inputs
    except Exception:  # noqa: BLE001 - a Sequential model not built yet
        return []
    if not isinstance(inputs, (list, tuple)):
        return []
    return [str(getattr(tensor, "name", "")) for tensor in inputs]


def _label(key: Key, names: list[str], single: bool) -> str:
    if isinstance(key, str):
        return f"x[{key!r}]"
    if single:
        return "x"
    name = names[key] if key < len(names) and names[key] else ""
    return f"x[{key}] (input {name!r})" if name else f"x[{key}]"


def _find(trained: dict[Key, Range], key: Key, names: list[str]) -> Range | None:
    """The training range of ``key``, translating a position to a name (or back) by the
    model's input names when the two calls passed the inputs differently."""
    found = trained.get(key)
    if found is not None:
        return found
    if isinstance(key, int) and key < len(names):
        return trained.get(names[key])
    if isinstance(key, str) and key in names:
        return trained.get(names.index(key))
    return None


def _ranges(leaves: dict[Key, Any]) -> dict[Key, Range]:
    out = {}
    for key, array in leaves.items():
        sample = Sample()
        sample.add(array)
        found = sample.range()
        if found is not None:
            out[key] = found
    return out


def _findings(
    model: Any,
    method: str,
    line: str,
    trained: dict[Key, Range],
    seen: dict[Key, Range],
) -> list[Finding]:
    names = _input_names(model)
    single = len(seen) == 1 and len(trained) == 1
    source = _source(model)
    found = []
    for key, given in seen.items():
        reference = _find(trained, key, names)
        if reference is None:
            continue
        verdict = compare(reference, given)
        if verdict is None:
            continue
        details = InputScaleReport(
            source,
            "",
            _model_name(model),
            method,
            line,
            _label(key, names, single),
            reference,
            given,
            verdict,
        )
        found.append(Finding.of(details, group=f"{method}:{key}"))
    return found


def _model_name(model: Any) -> str:
    return f"model {str(getattr(model, 'name', type(model).__name__))!r}"


def _source(model: Any) -> str:
    return f"inputs of {_model_name(model)}"


# -- A generator's first batches ---------------------------------------------------------


class _Watch:
    """Samples the first :data:`BATCHES` batches of a guarded generator: a feed of its
    handle's :class:`~safegen._handle.Tap`, shared with the other checks that read them."""

    __slots__ = ("done", "left", "samples", "stop")

    def __init__(self, done: Callable[[dict[Key, Range]], None] | None) -> None:
        self.left = BATCHES
        self.samples: dict[Key, Sample] = {}
        self.done = done  # called with the ranges once the batches are in (fit)
        self.stop: Callable[[], None] | None = None

    def seen(self, batch: Any, index: Any) -> bool:
        """Sample ``batch``; whether to go on (called by the tap, under the lock)."""
        try:
            leaves = _leaves(_unpack(batch))
            for key, array in (leaves or {}).items():
                self.samples.setdefault(key, Sample()).add(array, MAX_VALUES // BATCHES)
        except Exception:  # noqa: BLE001 - never break the user's training
            self.left = 0
        self.left -= 1
        if self.left > 0:
            return True
        if self.done is not None:
            self.finish()
        return False

    def finish(self) -> dict[Key, Range]:
        """Stop watching; the ranges sampled (handed to ``done`` once)."""
        stop, self.stop = self.stop, None
        if stop is not None:
            stop()
        samples, self.samples = self.samples, {}
        done, self.done = self.done, None
        ranges = {}
        for key, sample in samples.items():
            found = sample.range()
            if found is not None:
                ranges[key] = found
        if done is not None:
            done(ranges)
        return ranges


def _watch(source: Any, done: Callable[[dict[Key, Range]], None] | None) -> _Watch | None:
    """Watch a guarded generator's first batches, or ``None`` when ``source`` is not one
    (or a detector in a worker process watches it)."""
    handle = handle_of(source)
    if handle is None or not hasattr(handle, "intercept") or handle.producer is None:
        return None
    watch = _Watch(done)
    watch.stop = Tap.install(handle, (watch,))
    return watch if watch.stop is not None else None


# -- The call check ------------------------------------------------------------------------


def check(call: Any) -> Callable[[], None] | None:
    """The call check (see the module's docstring)."""
    model = call.model
    x = call.arguments.get("x")
    if x is None:
        return None
    if call.method == "fit":
        return _fit(call, model, x)
    if call.method not in ("predict", "evaluate"):
        return None
    extra = call.arguments.get("kwargs")
    if isinstance(extra, dict) and extra.get("_use_cached_eval_dataset"):
        # fit's own evaluation of its validation data (Keras 3 and tf_keras): its
        # validation_data was compared at fit; a validation_split is fit's own rows.
        return None
    trained = trained_ranges(model)
    if not trained:
        return None  # never fit under enable(): nothing to compare with
    line = user_line()
    leaves = _leaves(x)
    if leaves is not None:
        call.checked(_source(model))
        for finding in _findings(model, call.method, line, trained, _ranges(leaves)):
            call.report(finding)
        return None
    watch = _watch(x, None)
    if watch is None:
        return None

    def finish() -> None:
        seen = watch.finish()
        if seen:
            call.checked(_source(model))
            for finding in _findings(model, call.method, line, trained_ranges(model), seen):
                call.report(finding)

    return finish


def _fit(call: Any, model: Any, x: Any) -> Callable[[], None] | None:
    leaves = _leaves(x)
    if leaves is None:
        watch = _watch(x, lambda ranges: _remember(model, ranges))
        if watch is None:
            return None

        def finish() -> None:
            watch.finish()

        return finish
    ranges = _ranges(leaves)
    _remember(model, ranges)
    validation = call.arguments.get("validation_data")
    if isinstance(validation, (tuple, list)) and len(validation) in (2, 3) and ranges:
        seen_leaves = _leaves(validation[0])
        if seen_leaves:
            call.checked(_source(model))
            line = user_line()
            for finding in _findings(model, "fit", line, ranges, _ranges(seen_leaves)):
                call.report(finding)
    return None


# -- The public function ---------------------------------------------------------------------


def check_inputs(model: Any, x: Any, *, reference: Any = None) -> list[str]:
    """Checks that ``x`` is on the scale ``model`` was trained on, input by input.

    Compares the bulk (1st to 99th percentile) of each input of ``x`` with that of what
    ``model`` was fit on under ``safegen.enable()`` (``python -m safegen run``, ``pytest
    --safegen``), or with ``reference``, the training inputs, when given. Raises
    :class:`safegen.InputScaleError` for an input more than 5% of whose values lie more
    than 5 training widths beyond the training range (raw 0-255 pixels against 0-1, raw
    features against standardized ones), or whose bulk is more than 100 times narrower
    (pixels divided by 255 twice). The rule and its numbers: the input-scale page of
    the docs.

    Args:
        model: a Keras 3 (``keras``) or Keras 2 (``tf_keras``) model.
        x: the inputs: an array or tensor, or a list or dict of them (one per model
            input), as given to ``predict``.
        reference: the inputs ``model`` was trained on, in the same form; by default,
            what ``fit`` was given under ``safegen.enable()``.

    Returns:
        The names of the inputs compared (``["x"]``, ``["x['image']", ...]``).

    Raises:
        safegen.InputScaleError: an input is on another scale.
        TypeError: ``model`` is not a Keras model, or ``x`` (or ``reference``) holds no
            arrays.
        ValueError: there is nothing to compare with (no ``reference``, and ``model``
            was not fit under ``safegen.enable()``).

    Example:
        >>> import keras, numpy as np, safegen
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        >>> train = np.random.default_rng(0).uniform(0, 1, (256, 4))
        >>> safegen.check_inputs(model, train[:8], reference=train)
        ['x']
    """
    from safegen._frameworks import integration

    integration(model, "training", "check_inputs(model, x)", "model")
    leaves = _leaves(x)
    if leaves is None:
        raise TypeError(
            "check_inputs(model, x): x must be an array or tensor, or a list or dict of "
            f"them; got {type(x).__name__}"
        )
    if reference is not None:
        reference_leaves = _leaves(reference)
        if reference_leaves is None:
            raise TypeError(
                "check_inputs(model, x, reference=...): reference must be an array or "
                f"tensor, or a list or dict of them; got {type(reference).__name__}"
            )
        trained = _ranges(reference_leaves)
    else:
        trained = trained_ranges(model)
        if not trained:
            raise ValueError(
                f"check_inputs(model, x): model {getattr(model, 'name', '?')!r} was not fit "
                "under safegen.enable(), so nothing records what it was trained on; pass "
                "the training inputs as reference=..."
            )
    seen = _ranges(leaves)
    names = _input_names(model)
    single = len(seen) == 1 and len(trained) == 1
    findings = _findings(model, "check_inputs", user_line(), trained, seen)
    if findings:
        report_all(findings, Handling("raise"))
    return [_label(key, names, single) for key in seen if _find(trained, key, names)]


check_inputs.__module__ = "safegen"
