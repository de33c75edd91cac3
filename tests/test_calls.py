"""The call checks of a model's fit/evaluate/predict (safegen.integrations._calls): run
under enable(), their findings counted and handled on the one path, their own failures
kept out of the user's training."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import safegen
from safegen._finding import Finding, Kind

pytestmark = pytest.mark.keras

SEEN: list[tuple[str, str, tuple[str, ...]]] = []


def recording_check(call):
    """Notes the call, and finds something in every fit whose x is all zeros."""
    SEEN.append((call.framework, call.method, tuple(sorted(call.arguments))))
    call.checked("model 'probe'")
    x = call.arguments.get("x")
    finished = []

    def finish():
        finished.append(call.method)
        SEEN.append(("finished", call.method, ()))

    if call.method == "fit" and isinstance(x, np.ndarray) and not x.any():
        call.report(Finding(Kind.INPUT_SCALE, "model 'probe'", "", "x is all zeros. Fix: no."))
    return finish


def broken_check(call):
    """A check with a bug of safegen's own."""
    raise KeyError("oops")


@pytest.fixture
def patched_fit():
    """keras.Model.fit and predict with the two checks above, under enable()."""
    import keras

    from safegen.integrations._patching import patch_training_methods

    SEEN.clear()
    with safegen.enabled() as session:
        undo = patch_training_methods(
            keras.Model,
            {"fit": ("x",), "predict": ("x",)},
            framework="keras",
            checks=(f"{__name__}:recording_check", f"{__name__}:broken_check"),
        )
        try:
            yield session
        finally:
            undo()


def _model():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return model


class TestCallChecks:
    def test_check_sees_the_call_and_finishes(self, patched_fit):
        """A check runs before fit with its bound arguments, and its finish after it."""
        model = _model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", safegen.SafegenWarning)
            model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
            model.predict(np.ones((4, 3)), verbose=0)
        assert SEEN[0][:2] == ("keras", "fit")
        assert {"x", "y", "epochs", "verbose"} <= set(SEEN[0][2])
        assert ("finished", "fit", ()) in SEEN
        assert ("keras", "predict") in [entry[:2] for entry in SEEN]
        assert patched_fit.counts()["input_scales"] == 0

    def test_finding_raises_and_is_counted(self, patched_fit):
        """A finding takes the one path: counted under the check, then raised."""
        model = _model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", safegen.SafegenWarning)
            with pytest.raises(safegen.InputScaleError, match="x is all zeros"):
                model.fit(np.zeros((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
        assert patched_fit.counts()["input_scales"] == 1
        assert ("finished", "fit", ()) not in SEEN  # fit did not run
        summary = patched_fit.summary()
        assert "check model 'probe': 1 time(s), 1 violation(s)" in summary
        assert "input scale: x is all zeros." in summary
        assert patched_fit.failures() == {"input_scales": 1}

    def test_broken_check_warns_and_training_goes_on(self, patched_fit):
        """A check that fails inside safegen is skipped with a warning naming it."""
        model = _model()
        with pytest.warns(safegen.SafegenWarning, match="broken_check failed on this call"):
            history = model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
        assert len(history.history["loss"]) == 1

    def test_disable_switch_skips_checks(self, patched_fit, monkeypatch):
        """SAFEGEN_DISABLE=1 switches the call checks off too."""
        from safegen import _config

        monkeypatch.setenv("SAFEGEN_DISABLE", "1")
        _config.reset()
        try:
            model = _model()
            model.fit(np.zeros((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
        finally:
            monkeypatch.delenv("SAFEGEN_DISABLE")
            _config.reset()
        assert SEEN == []
