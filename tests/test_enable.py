"""safegen.enable(): every data source that reaches Keras 3 or tf.data is guarded."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import safegen
from safegen import _enable

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _always_disable():
    """Every test ends with safegen disabled, whatever it did."""
    yield
    safegen.disable()


def _python(code, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


class TestSwitch:
    """enable, disable and enabled: the switch itself, framework or not."""

    def test_enable_and_disable(self):
        """enable() switches on, disable() off; both can be repeated."""
        safegen.enable()
        safegen.enable(mode="copy")
        assert safegen.is_enabled()
        assert _enable.options().options.mode == "copy"
        safegen.disable()
        safegen.disable()
        assert not safegen.is_enabled()
        assert _enable._undo == {}  # nothing is left patched

    def test_enabled_context_restores_the_previous_state(self):
        """with safegen.enabled(): nests, and gives back the options it found."""
        safegen.enable(mode="copy")
        with safegen.enabled(mode="freeze") as session:
            assert _enable.options().options.mode == "freeze"
            assert session is safegen.session()
        assert _enable.options().options.mode == "copy"
        safegen.disable()
        with safegen.enabled():
            assert safegen.is_enabled()
        assert not safegen.is_enabled()

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"mode": "banana"}, ValueError, r"safegen.enable\(\): invalid mode 'banana'"),
            ({"window": 0}, ValueError, r"safegen.enable\(\): window must be an int >= 1"),
            ({"on_violation": "loud"}, ValueError, "invalid on_violation 'loud'"),
            ({"shapes": "yes"}, TypeError, "shapes must be True or False"),
        ],
    )
    def test_bad_options_are_refused(self, kwargs, error, match):
        """A bad option is refused with the valid values, and nothing is switched on."""
        with pytest.raises(error, match=match):
            safegen.enable(**kwargs)
        assert not safegen.is_enabled()

    def test_a_failing_integration_does_not_break_the_import(self):
        """An integration that fails to install warns, at enable() or at the framework's
        import, and the program goes on; nothing of it stays installed."""
        code = (
            "import sys, types, warnings, safegen\n"
            "from safegen import _enable\n"
            "broken = types.ModuleType('broken_integration')\n"
            "def install():\n"
            "    raise RuntimeError('no luck')\n"
            "broken.install = install\n"
            "sys.modules['broken_integration'] = broken\n"
            "for name in ('json', 'colorsys'):  # imported already, and not yet\n"
            "    _enable._INTEGRATIONS[name] = ('broken_integration:install',)\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    safegen.enable()\n"
            "    import colorsys\n"
            "print(colorsys.rgb_to_hsv(0, 0, 0), sorted(_enable._undo))\n"
            "for warning in caught:\n"
            "    print(warning.category.__name__, str(warning.message).split(' (')[0])\n"
        )
        result = _python(code)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "(0.0, 0.0, 0) []",
            "SafegenWarning safegen could not install its json integration at safegen.enable()",
            "SafegenWarning safegen could not install its colorsys integration as colorsys was "
            "imported",
        ]

    def test_failed_integration_warning_points_at_the_user(self, tmp_path):
        """The warning names the import (or enable()) and points at the user's import
        statement, or the user's enable() call, not into safegen or the import system."""
        script = tmp_path / "prog.py"
        script.write_text(
            "import sys, types, warnings, safegen\n"
            "from safegen import _enable\n"
            "broken = types.ModuleType('broken_integration')\n"
            "def install():\n"
            "    raise RuntimeError('no luck')\n"
            "broken.install = install\n"
            "sys.modules['broken_integration'] = broken\n"
            "for name in ('json', 'colorsys'):  # imported already, and not yet\n"
            "    _enable._INTEGRATIONS[name] = ('broken_integration:install',)\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    with safegen.enabled():  # ENABLE\n"
            "        import colorsys  # IMPORT\n"
            "for warning in caught:\n"
            "    print(warning.filename, warning.lineno, str(warning.message).split(' (')[0])\n"
        )
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"{script} 12 safegen could not install its json integration at safegen.enable()",
            f"{script} 13 safegen could not install its colorsys integration as colorsys was "
            "imported",
        ]

    @pytest.mark.slow
    def test_another_hook_of_the_same_kind(self):
        """A second finder that also asks the others for the spec causes no recursion."""
        code = (
            "import sys, safegen\n"
            "class Other:\n"
            "    busy = False\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        for finder in sys.meta_path:\n"
            "            if finder is not self and hasattr(finder, 'find_spec'):\n"
            "                spec = finder.find_spec(name, path, target)\n"
            "                if spec is not None:\n"
            "                    return spec\n"
            "sys.meta_path.insert(0, Other())\n"
            "safegen.enable()\n"
            "import keras\n"
            "print('imported', safegen._enable._undo.keys() >= {'keras'})\n"
        )
        result = _python(code, env={"PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"})
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == "imported True"

    def test_import_and_enable_load_no_framework(self):
        """enable() imports neither Keras nor TensorFlow: a program without them pays nothing."""
        code = (
            "import sys, safegen\n"
            "safegen.enable()\n"
            "print(','.join(m for m in ('keras', 'tensorflow', 'tf_keras', 'jax') "
            "if m in sys.modules))\n"
        )
        result = _python(code)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == ""


keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _mean_model():
    """One Lambda computing the mean: its loss is 0 exactly when x and y agree."""
    inputs = keras.Input(shape=(2,))
    outputs = keras.layers.Lambda(
        lambda x: keras.ops.expand_dims((x[:, 0] + x[:, 1]) / 2, -1), output_shape=(1,)
    )(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(loss="mse", optimizer="rmsprop")
    return model


def reused(batch_size=16, seed_=0):
    """The article's bug: one buffer, refilled and yielded on every step."""
    rng = np.random.default_rng(seed_)
    x = np.zeros((batch_size, 2), np.float32)
    while True:
        x[:] = rng.integers(0, 100, size=(batch_size, 2))
        yield x, ((x[:, 0] + x[:, 1]) / 2)[:, None]


def fresh(batch_size=16, seed_=0):
    """The fix: a new array on every step."""
    rng = np.random.default_rng(seed_)
    while True:
        x = rng.integers(0, 100, size=(batch_size, 2)).astype(np.float32)
        yield x, ((x[:, 0] + x[:, 1]) / 2)[:, None]


class SharedBuffer(keras.utils.PyDataset):
    """A PyDataset whose __getitem__ writes every batch into one buffer."""

    def __init__(self, batches=8, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches
        self.x = np.zeros((16, 2), np.float32)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        self.x[:] = index
        return self.x, self.x[:, :1].copy()


_KERAS_ORIGINALS = {name: keras.Model.__dict__.get(name) for name in ("fit", "evaluate", "predict")}

pytestmark = [
    pytest.mark.keras,
    pytest.mark.filterwarnings("ignore:The model does not have any trainable weights"),
    pytest.mark.filterwarnings("ignore:`shuffle=True` was passed"),
]


class TestPatches:
    """What enable() patches, and that disable() puts it back exactly."""

    def _state(self):
        from tensorflow.python.data.ops import dataset_ops, iterator_ops

        return (
            {name: keras.Model.__dict__.get(name) for name in ("fit", "evaluate", "predict")},
            dataset_ops.DatasetV2.__dict__["from_generator"],
            iterator_ops.OwnedIterator.__dict__["__next__"],
        )

    def test_disable_restores_every_original(self):
        """After enable/disable, Model and tf.data hold exactly their own functions."""
        before = self._state()
        safegen.enable()
        during = self._state()
        assert during[0]["fit"] is not before[0]["fit"]
        assert during[1] is not before[1] and during[2] is not before[2]
        safegen.disable()
        assert self._state() == before
        assert before[0] == _KERAS_ORIGINALS  # inherited ones stay inherited (None here)

    def test_patches_are_wrapt_wrappers_that_look_like_the_originals(self):
        """Under enable(), fit and from_generator are wrapt wrappers with the originals'
        names and signatures, bound as the originals were."""
        import inspect

        import wrapt

        original_fit = keras.Model.fit
        original_from_generator = tf.data.Dataset.from_generator
        safegen.enable()
        try:
            model = keras.Sequential([keras.layers.Dense(1)])
            for patched, original in (
                (keras.Model.__dict__["fit"], original_fit),
                (model.fit, original_fit.__get__(model)),
                (tf.data.Dataset.from_generator, original_from_generator),
            ):
                assert isinstance(patched, wrapt.FunctionWrapper | wrapt.BoundFunctionWrapper)
                assert patched.__name__ == original.__name__
                assert inspect.signature(patched) == inspect.signature(original)
        finally:
            safegen.disable()

    def test_concurrent_enable_and_disable(self):
        """enable/disable from many threads at once leave a consistent state."""
        before = self._state()
        errors = []

        def flip():
            try:
                for _ in range(30):
                    safegen.enable()
                    safegen.disable()
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

        threads = [threading.Thread(target=flip) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        safegen.disable()
        assert self._state() == before
        safegen.enable()
        assert self._state()[0]["fit"] is not None
        safegen.disable()


class TestFit:
    """model.fit, evaluate and predict guard what they are given."""

    def test_reused_buffer_raises_naming_the_generator(self):
        """fit on the reused-buffer generator raises AliasingError naming it and its file."""
        safegen.enable()
        with pytest.raises(safegen.AliasingError, match=r"^reused\(\) at tests/test_enable.py:"):
            _mean_model().fit(reused(), steps_per_epoch=5, epochs=1, verbose=0)

    def test_clean_generator_trains_and_is_counted(self):
        """A clean generator trains to 0 loss, and the session counts its batches."""
        safegen.enable()
        history = _mean_model().fit(fresh(), steps_per_epoch=5, epochs=2, verbose=0)
        assert history.history["loss"] == [0.0, 0.0]
        data = safegen.session().as_dict()
        (row,) = data["sources"]
        assert row["name"] == "fresh()" and row["mode"] == "check"
        assert row["yields"] >= 10 and row["violations"] == 0

    def test_copy_mode_fixes_the_reused_buffer(self):
        """enable(mode="copy"): the reused-buffer generator trains to a loss of 0."""
        safegen.enable(mode="copy")
        history = _mean_model().fit(reused(), steps_per_epoch=10, epochs=2, verbose=0)
        assert history.history["loss"] == [0.0, 0.0]

    def test_mode_comes_from_configure_when_not_given(self):
        """enable() without a mode takes the configured one (and SAFEGEN_MODE)."""
        safegen.configure(mode="copy")
        safegen.enable()
        _mean_model().fit(reused(), steps_per_epoch=3, epochs=1, verbose=0)
        (row,) = safegen.session().as_dict()["sources"]
        assert row["mode"] == "copy"

    def test_validation_data_is_guarded(self):
        """A reused-buffer generator given as validation_data raises, naming it."""
        safegen.enable()
        with pytest.raises(safegen.AliasingError, match=r"^reused\(\) at"):
            _mean_model().fit(
                fresh(),
                steps_per_epoch=3,
                epochs=1,
                validation_data=reused(),
                validation_steps=3,
                verbose=0,
            )

    @pytest.mark.parametrize("method", ["evaluate", "predict"])
    def test_evaluate_and_predict_are_guarded(self, method):
        """evaluate and predict on the reused-buffer generator raise AliasingError."""
        safegen.enable()
        with pytest.raises(safegen.AliasingError, match=r"^reused\(\) at"):
            getattr(_mean_model(), method)(reused(), steps=4, verbose=0)

    def test_pydataset_is_guarded_then_given_back(self):
        """A shared-buffer PyDataset raises naming __getitem__; afterwards it is unguarded."""
        dataset = SharedBuffer()
        cls = type(dataset)
        safegen.enable()
        with pytest.raises(safegen.AliasingError, match=r"SharedBuffer.__getitem__\(\) at"):
            _mean_model().fit(dataset, epochs=1, verbose=0)
        assert type(dataset) is cls
        with pytest.raises(TypeError, match="needs a generator"):
            safegen.stats(dataset)  # no longer guarded

    def test_already_guarded_source_keeps_its_options(self):
        """A generator guarded by the user in copy mode is not guarded again in check mode."""
        guarded = safegen.guard(reused, mode="copy")
        safegen.enable(mode="check")
        history = _mean_model().fit(guarded(), steps_per_epoch=5, epochs=1, verbose=0)
        assert history.history["loss"] == [0.0]
        rows = safegen.session().as_dict()["sources"]
        assert [(r["name"], r["mode"]) for r in rows] == [("reused()", "copy")]

    def test_nothing_is_guarded_once_disabled(self):
        """After disable(), fit on the reused buffer runs unguarded (no error)."""
        safegen.enable()
        safegen.disable()
        _mean_model().fit(reused(), steps_per_epoch=3, epochs=1, verbose=0)

    def test_off_mode_guards_nothing(self):
        """enable(mode="off") lets the reused buffer through, as SAFEGEN_MODE=off would."""
        safegen.enable(mode="off")
        _mean_model().fit(reused(), steps_per_epoch=3, epochs=1, verbose=0)

    def test_other_iterators_keep_keras_own_error(self):
        """An iterator Keras 3 refuses is refused as before, not turned into a generator."""
        safegen.enable()
        with pytest.raises(ValueError, match="Unrecognized data type"):
            _mean_model().fit(iter([np.zeros((2, 2))]), epochs=1, verbose=0)


def _signature():
    return (
        tf.TensorSpec(shape=(16, 2), dtype=tf.float32),
        tf.TensorSpec(shape=(16, 1), dtype=tf.float32),
    )


class TestFromGenerator:
    """tf.data.Dataset.from_generator guards its callable, and errors come out as safegen's."""

    def test_direct_iteration_raises_aliasing_error(self):
        """Iterating the dataset raises AliasingError itself, chained from TensorFlow's error."""
        safegen.enable()
        dataset = tf.data.Dataset.from_generator(reused, output_signature=_signature())
        with pytest.raises(safegen.AliasingError, match=r"^reused\(\) at") as caught:
            for _ in dataset.take(4):
                pass
        carrier = caught.value.__context__
        assert isinstance(carrier, tf.errors.OpError)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert f"from the tensorflow {type(carrier).__name__} that carried it" in (
            caught.value.__notes__[-1]
        )

    def test_traceback_shows_safegen_error_only(self):
        """The printed traceback is safegen's error alone: TensorFlow's carrier error, its
        traceback and its copy of the message are left out (a one-line note names it)."""
        import traceback

        safegen.enable()
        dataset = tf.data.Dataset.from_generator(reused, output_signature=_signature())
        with pytest.raises(safegen.AliasingError) as caught:
            for _ in dataset.take(4):
                pass
        printed = "".join(traceback.format_exception(caught.value))
        assert printed.startswith("Traceback (most recent call last):\n"), printed
        assert "The above exception was the direct cause" not in printed, printed
        assert "During handling of the above exception" not in printed, printed
        assert printed.count("changed after it was yielded") == 1, printed
        assert "tensorflow.python.framework.errors_impl" not in printed, printed
        assert printed.rstrip().endswith("not shown)"), printed

    def test_generator_given_by_keyword_is_guarded(self):
        """from_generator(generator=...) guards the callable as the positional form does."""
        safegen.enable()
        dataset = tf.data.Dataset.from_generator(generator=reused, output_signature=_signature())
        with pytest.raises(safegen.AliasingError, match=r"^reused\(\) at"):
            for _ in dataset.take(4):
                pass

    def test_users_own_error_of_a_similar_name_is_left_alone(self):
        """A user's BadShapeError raised in a data thread is not taken for safegen's."""

        class BadShapeError(Exception):
            pass

        def broken():
            raise BadShapeError("ShapeError: the user's own words")
            yield  # pragma: no cover

        safegen.enable()
        dataset = tf.data.Dataset.from_generator(broken, output_signature=_signature())
        with pytest.raises(tf.errors.OpError, match="BadShapeError") as caught:
            for _ in dataset:
                pass
        assert not isinstance(caught.value, safegen.SafegenError)

    def test_fit_on_from_generator_raises_aliasing_error(self):
        """fit on a from_generator dataset over the reused buffer raises AliasingError."""
        safegen.enable()
        dataset = tf.data.Dataset.from_generator(reused, output_signature=_signature())
        with pytest.raises(safegen.AliasingError, match=r"^reused\(\) at"):
            _mean_model().fit(dataset, steps_per_epoch=4, epochs=1, verbose=0)

    def test_clean_callable_with_args(self):
        """A clean callable with args= trains, and is counted once per epoch's generator."""
        safegen.enable()
        dataset = tf.data.Dataset.from_generator(
            fresh, args=(16, 1), output_signature=_signature()
        ).take(3)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(3))
        history = _mean_model().fit(dataset, epochs=2, verbose=0)
        assert history.history["loss"] == [0.0, 0.0]
        (row,) = safegen.session().as_dict()["sources"]
        assert row["name"] == "fresh()" and row["generators"] >= 2

    def test_keras_own_generators_are_not_guarded_twice(self):
        """fit on a Python generator guards it once, not again inside Keras's from_generator."""
        safegen.enable()
        _mean_model().fit(fresh(), steps_per_epoch=3, epochs=1, verbose=0)
        assert [r["name"] for r in safegen.session().as_dict()["sources"]] == ["fresh()"]


@pytest.mark.slow
class TestImportOrder:
    """enable() before `import keras` installs the hooks when Keras arrives; and a model
    saved with checked layers loads in a program that imports safegen before Keras."""

    def test_checked_model_loads_when_keras_comes_after_safegen(self, tmp_path):
        """import safegen, then keras: load_model finds the checked Lambda and it checks."""
        path = tmp_path / "checked.keras"
        save = (
            "import keras, safegen\n"
            "inputs = keras.Input((2,))\n"
            "layer = keras.layers.Lambda(lambda x: x[:, 0], output_shape=(1,), name='mean')\n"
            "model = keras.Model(inputs, safegen.ShapeChecked(layer)(inputs))\n"
            f"model.save({str(path)!r})\n"
        )
        load = (
            "import safegen\n"
            "import keras, numpy as np\n"
            f"model = keras.models.load_model({str(path)!r}, safe_mode=False)\n"
            "try:\n"
            "    model.predict(np.ones((3, 2)), verbose=0)\n"
            "except safegen.ShapeError as error:\n"
            "    print('caught', str(error).splitlines()[0][:60])\n"
        )
        env = {"PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"}
        saved = _python(save, env=env)
        assert saved.returncode == 0, saved.stderr[-3000:]
        loaded = _python(load, env=env)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert loaded.stdout.startswith("caught "), loaded.stdout
        assert "'mean' (Lambda) returned rank 1" in loaded.stdout

    def test_enable_then_import_keras(self):
        """A program that enables first and imports Keras after is still guarded."""
        code = (
            "import os\n"
            "os.environ['KERAS_BACKEND'] = 'tensorflow'\n"
            "import sys, safegen\n"
            "safegen.enable()\n"
            "import keras\n"
            "from tests.test_enable import reused\n"
            "inputs = keras.Input((2,))\n"
            "model = keras.Model(inputs, keras.layers.Dense(1)(inputs))\n"
            "model.compile(loss='mse')\n"
            "try:\n"
            "    model.fit(reused(), steps_per_epoch=3, verbose=0)\n"
            "except safegen.AliasingError as error:\n"
            "    print('caught', str(error).split(':')[0])\n"
        )
        result = _python(code, env={"PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == "caught reused() at tests/test_enable.py"


@pytest.mark.slow
class TestJaxBackend:
    """enable() with Keras 3 on JAX: the patches sit on keras.Model, whatever the backend."""

    def test_generator_and_pydataset_on_jax(self):
        """On JAX, fit raises AliasingError for a reused generator and a shared-buffer PyDataset."""
        if importlib.util.find_spec("jax") is None:  # not imported here: JAX warns at fork
            pytest.skip("jax is not installed")
        code = (
            "import safegen\n"
            "safegen.enable()\n"
            "import keras\n"
            "from tests.test_enable import reused, SharedBuffer\n"
            "assert keras.backend.backend() == 'jax'\n"
            "inputs = keras.Input((2,))\n"
            "model = keras.Model(inputs, keras.layers.Dense(1)(inputs))\n"
            "model.compile(loss='mse')\n"
            "for source in (reused(), SharedBuffer(workers=2)):\n"
            "    try:\n"
            "        model.fit(source, steps_per_epoch=3, verbose=0)\n"
            "    except safegen.AliasingError as error:\n"
            "        print('caught', str(error).split(':')[0])\n"
        )
        result = _python(code, env={"PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"})
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.splitlines() == [
            "caught reused() at tests/test_enable.py",
            "caught SharedBuffer.__getitem__() at tests/test_enable.py",
        ]
