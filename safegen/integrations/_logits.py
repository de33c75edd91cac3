"""The logits check for Keras 3 (any backend) and tf_keras: a compiled model's
probabilistic losses against what the model really outputs.

For each output whose loss is a binary, categorical or sparse categorical cross-entropy
(:data:`safegen._detectors.logits.FUNCTIONS`; a name, a function, a built-in class or a
``LossFunctionWrapper`` around one, a ``functools.partial``), the model is run once, in
inference (``training=False``: no dropout drawn, no statistics updated, no weight
changed), on rows of the call's own data, and :func:`safegen._detectors.logits.judge`
compares the values with the loss's ``from_logits``.

Where the rows come from, without consuming what training reads or drawing from its
random streams:

* arrays (NumPy, tensors; a list, tuple or dict of them): the first ``batch_size`` rows,
  before ``fit``/``evaluate`` starts when the model is built, else when it is;
* a generator, iterator or ``PyDataset`` that safegen guards in check mode: the last
  batch it handed out, read from its handle (:meth:`safegen._handle.Handle.last_batch`)
  once Keras has taken one (Keras 3 takes the first batches before training starts;
  tf_keras at the first step). A model with several inputs, a batch held only in
  worker processes, copy and freeze modes: not checked;
* a ``tf.data.Dataset``: its first batch (``take(1)``, a new iterator) only when every
  stage of it is deterministic and free of Python code (tensor slices, ``map`` and
  ``filter`` of stateless functions, ``batch``, ``prefetch``, ...): a ``shuffle``, a
  random or stateful ``map``, ``from_generator``, ``cache`` and anything unknown are
  skipped, since a second iterator would move their state;
* anything else: not checked.

Each model is judged once per compiled loss: a loop of ``fit(epochs=1)`` pays for one
forward pass of one batch. The call check (:func:`check`, in ``CHECKS`` of both
``training.py``) and :func:`safegen.check_logits` share :func:`findings`.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from safegen._detectors.logits import judge, message
from safegen._finding import Finding, Kind
from safegen._frameworks import framework_of
from safegen._handle import Handle, handle_of
from safegen._handling import Handling, report
from safegen.integrations._calls import Call
from safegen.integrations._logits_model import (
    compiled_loss,
    has_probabilistic_loss,
    loss_spec,
    loss_specs,
    model_outputs,
    output_activations,
    root,
)

__all__ = ["check", "check_logits", "check_model", "findings", "loss_spec", "loss_specs"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_DEFAULT_BATCH = 32
_MAX_ROWS = 64

# The compiled loss each model was last judged with (a new compile judges again).
_JUDGED: weakref.WeakKeyDictionary[Any, Callable[[], Any]] = weakref.WeakKeyDictionary()


def _judged(model: Any, container: Any) -> bool:
    try:
        ref = _JUDGED.get(model)
    except TypeError:  # not weakly referable
        return False
    return ref is not None and ref() is container


def _mark_judged(model: Any, container: Any) -> None:
    try:
        _JUDGED[model] = weakref.ref(container)
    except TypeError:
        pass


def _stateful(model: Any) -> bool:
    """Whether a layer keeps state across calls (a stateful RNN): running the model
    once more would move it."""
    try:
        layers = list(model._flatten_layers())
    except Exception:  # noqa: BLE001 - not a Keras model after all
        return True
    return any(getattr(layer, "stateful", False) is True for layer in layers)


# Reading the losses -------------------------------------------------------------------


# The model's outputs --------------------------------------------------------------------


def _is_array(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim >= 1
    shape = getattr(x, "shape", None)
    return (
        root(type(x)) in ("tensorflow", "jax", "jaxlib")
        and shape is not None
        and len(shape) >= 1
        and hasattr(x, "__getitem__")
        and hasattr(x, "dtype")
    )


def _first_rows(x: Any, rows: int) -> Any:
    """The first ``rows`` rows of ``x`` (an array, or a list, tuple or dict of arrays),
    or ``None`` when it is not made of arrays."""
    if isinstance(x, dict):
        out = {key: _first_rows(value, rows) for key, value in x.items()}
        return None if any(value is None for value in out.values()) else out
    if isinstance(x, (list, tuple)):
        items = [_first_rows(value, rows) for value in x]
        if not items or any(item is None for item in items):
            return None
        return tuple(items) if isinstance(x, tuple) else items
    if _is_array(x):
        return x[:rows]
    return None


# The verdicts ---------------------------------------------------------------------------


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", type(model).__name__))


def source(model: Any) -> str:
    """The name findings and check records are listed under."""
    return f"model {_model_name(model)!r}"


def findings(
    model: Any, outputs: tuple[list[str], list[np.ndarray]], method: str
) -> tuple[list[Finding], list[str]]:
    """The findings on ``model``'s ``outputs`` (names and values, from a run on real
    inputs), and the names of the outputs judged."""
    names, values = outputs
    specs = loss_specs(model, names)
    activations = output_activations(model, len(values))
    several = len(values) > 1
    found, judged = [], []
    for name, value, spec, activation in zip(names, values, specs, activations, strict=True):
        if spec is None:
            continue
        judged.append(name)
        verdict = judge(spec, value, activation)
        if verdict is None:
            continue
        text = message(
            spec,
            verdict,
            model=_model_name(model),
            output=name if several else "",
            method=method,
            activation=activation,
        )
        where = source(model)
        found.append(Finding(Kind.LOGITS, where, "", text, group=f"{where}/{name}"))
    return found, judged


# Where the rows come from ---------------------------------------------------------------


def _single_input(model: Any) -> bool:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return True  # a subclassed model: try, and skip if the call fails
    return inputs is None or len(inputs) <= 1


def _guarded_batch(x: Any, model: Any) -> Any:
    """The first leaf of the last batch a guarded source handed out (its ``x`` for a
    model of one input), copied; or ``None``."""
    handle = handle_of(x)
    if not isinstance(handle, Handle) or not _single_input(model):
        return None
    with handle.lock:
        batch = handle.last_batch()
        if not batch or not batch[0]:
            return None
        first = batch[0][0]
        if not isinstance(first, np.ndarray) or first.ndim < 1:
            return None
        return first[:_MAX_ROWS].copy()


# tf.data stages that read nothing random, run no Python code and keep no state that a
# second iterator would move.
_PLAIN_DATASETS = frozenset(
    {
        "TensorSliceDataset", "TensorDataset", "RangeDataset", "BatchDataset",
        "ParallelBatchDataset", "PaddedBatchDataset", "UnbatchDataset", "PrefetchDataset",
        "OptionsDataset", "RepeatDataset", "TakeDataset", "SkipDataset", "ZipDataset",
        "ConcatenateDataset", "MapDataset", "ParallelMapDataset", "FilterDataset",
        "DatasetV1Adapter",
    }
)  # fmt: skip


def _stateless(function: Any) -> bool:
    graph = getattr(getattr(function, "function", None), "graph", None)
    if graph is None:
        return False
    for op in graph.get_operations():
        try:
            if op.op_def.is_stateful:
                return False
        except Exception:  # noqa: BLE001 - an op without a definition: not known safe
            return False
    return True


def _plain(dataset: Any) -> bool:
    """Whether iterating ``dataset`` once more moves no state and runs no user Python."""
    seen = 0
    stack = [dataset]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > 64 or type(node).__name__.lstrip("_") not in _PLAIN_DATASETS:
            return False
        for value in vars(node).values():
            if hasattr(value, "function") and hasattr(value, "output_structure"):
                if not _stateless(value):
                    return False
        try:
            stack.extend(node._inputs())
        except Exception:  # noqa: BLE001
            return False
    return True


def _dataset_batch(x: Any) -> Any:
    if root(type(x)) != "tensorflow" or not hasattr(x, "take") or not hasattr(x, "_inputs"):
        return None
    if not _plain(x):
        return None
    for element in x.take(1):
        inputs = element[0] if isinstance(element, tuple) else element
        return _first_rows(inputs, _MAX_ROWS)
    return None


def _call_rows(call: Call) -> Any:
    """The rows of the call's own data to run the model on, or ``None``."""
    x = call.arguments.get("x")
    if x is None:
        return None
    batch_size = call.arguments.get("batch_size") or _DEFAULT_BATCH
    if not isinstance(batch_size, int) or batch_size < 1:
        batch_size = _DEFAULT_BATCH
    rows = _first_rows(x, min(batch_size, _MAX_ROWS))
    if rows is not None:
        return rows
    batch = _guarded_batch(x, call.model)
    if batch is not None:
        return batch
    return _dataset_batch(x)


# The call check -------------------------------------------------------------------------


class _Probe:
    """One call's logits check: judged once, as soon as the model is built and rows of
    the call's data are at hand."""

    def __init__(self, call: Call, container: Any) -> None:
        self.call = call
        self.container = container
        self.done = False

    def attempt(self) -> bool:
        """Judge now if possible; returns whether it is done (judged, or never will be)."""
        if self.done:
            return True
        model = self.call.model
        if not getattr(model, "built", False):
            return False
        rows = _call_rows(self.call)
        if rows is None:
            return False
        self.done = True
        try:
            outputs = model_outputs(model, rows)
        except Exception:  # noqa: BLE001 - Keras words its own error in the call, if any
            return True
        if outputs is None:
            return True
        found, judged = findings(model, outputs, self.call.method)
        if not judged:
            return True
        _mark_judged(model, self.container)
        self.call.checked(source(model), "")
        for finding in found:
            self.call.report(finding)
        return True


def _callback(framework: str, probe: _Probe) -> Any:
    """A Keras callback that runs ``probe`` when training or evaluation begins (and, on
    tf_keras, which builds a model at its first step, after the first batch)."""
    base = importlib.import_module(f"{framework}.callbacks").Callback

    class LogitsCheck(base):  # type: ignore[misc, valid-type]
        """safegen's logits check: the first batch's outputs against the losses."""

        async_safe = True
        _supports_tf_logs = True

        def on_train_begin(self, logs: Any = None) -> None:
            probe.attempt()

        def on_test_begin(self, logs: Any = None) -> None:
            probe.attempt()

    if framework != "tf_keras":
        return LogitsCheck()

    class FirstBatchLogitsCheck(LogitsCheck):
        def on_train_batch_end(self, batch: Any, logs: Any = None) -> None:
            if not probe.done:
                probe.attempt()
                probe.done = True

        def on_test_batch_end(self, batch: Any, logs: Any = None) -> None:
            self.on_train_batch_end(batch, logs)

    return FirstBatchLogitsCheck()


def check(call: Call) -> Callable[[], None] | None:
    """The call check (``CHECKS``): before ``fit`` and ``evaluate`` of a compiled model
    with a probabilistic loss, judge its outputs on the call's first rows."""
    if call.method not in ("fit", "evaluate"):
        return None
    model = call.model
    container = compiled_loss(model)
    if container is None or _judged(model, container):
        return None
    if not has_probabilistic_loss(model) or _stateful(model):
        return None
    probe = _Probe(call, container)
    if _first_rows(call.arguments.get("x"), 1) is not None and probe.attempt():
        return None  # arrays, and a built model: judged before the call
    callbacks = call.arguments.get("callbacks")
    if callbacks is None:
        callbacks = []
    elif not isinstance(callbacks, (list, tuple)):
        return None  # a CallbackList of the user's: left alone
    call.arguments["callbacks"] = [*callbacks, _callback(call.framework, probe)]
    return None


# The public function --------------------------------------------------------------------


def check_model(model: Any, x: Any, *, batch_size: int) -> list[str]:
    """:func:`safegen.check_logits` for a model of either Keras."""
    compiled = getattr(model, "compiled", None)
    if compiled is None:
        compiled = getattr(model, "_is_compiled", False)
    if not compiled:
        raise ValueError(
            f"check_logits(model, x): model {_model_name(model)!r} is not compiled; call "
            "model.compile(loss=...) first."
        )
    if _stateful(model):
        raise ValueError(
            f"check_logits(model, x): model {_model_name(model)!r} has stateful layers "
            "(stateful=True): running it would move their states; check a stateless copy."
        )
    rows = _first_rows(x, batch_size)
    if rows is None:
        raise TypeError(
            "check_logits(model, x): x must be an array, or a list, tuple or dict of "
            f"arrays, with one row per sample; got {type(x).__name__}."
        )
    try:
        ran = model_outputs(model, rows)
    except Exception as error:
        raise ValueError(
            f"check_logits(model, x): model {_model_name(model)!r} failed on the first "
            f"{batch_size} rows of x: {type(error).__name__}: {error}"
        ) from error
    if ran is None:
        return []
    found, judged = findings(model, ran, "check_logits")
    for finding in found:
        report(finding, Handling("raise"))
    return judged


def check_logits(model: Any, x: Any, *, batch_size: int = 32) -> list[str]:
    """Checks that each probabilistic loss of a compiled ``model`` gets what its
    ``from_logits`` says: probabilities or logits.

    Runs the model on the first ``batch_size`` rows of ``x`` (inference, nothing
    trained, no random draw) and, for each output whose loss is a binary, categorical
    or sparse categorical cross-entropy (built-in functions, names or classes, focal
    variants included), compares the values with the loss's ``from_logits``: values
    outside ``[0, 1]`` (or categorical rows not summing to 1) for a loss expecting
    probabilities; probabilities (rows summing to 1, or values in ``[0, 1]`` from a
    sigmoid/softmax output layer) for a loss expecting logits. On a mix-up it raises
    :class:`safegen.LogitsError` naming the loss, the output, the values seen and the
    fix.

    ``safegen.enable()`` (``python -m safegen run``, ``pytest --safegen``) checks every
    ``fit`` and ``evaluate`` the same way, on the call's first batch.

    Args:
        model: a compiled Keras 3 (``keras``) or Keras 2 (``tf_keras``) model.
        x: inputs the model takes (an array, or a list or dict of arrays).
        batch_size: how many rows of ``x`` to run the model on.

    Returns:
        The names of the outputs whose loss was checked: an empty list when no loss is
            probabilistic.

    Raises:
        LogitsError: a loss expects probabilities and gets logits, or the reverse.
        TypeError: ``model`` is not a Keras model.
        ValueError: ``model`` is not compiled, has stateful layers (running it would
            move their states), fails on ``x``, or ``batch_size`` is not positive.

    Example:
        >>> import keras, numpy as np, safegen
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="d")])
        >>> model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True))
        >>> safegen.check_logits(model, np.ones((8, 3)))
        ['d']
    """
    if framework_of(model) is None:
        raise TypeError(
            "check_logits(model, x): model must be a Keras 3 (keras) or Keras 2 (tf_keras) "
            f"model; got {model!r} of type {type(model).__name__}."
        )
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(
            f"check_logits(model, x): batch_size must be a positive int; got {batch_size!r}."
        )
    return check_model(model, x, batch_size=batch_size)


check_logits.__module__ = "safegen"
