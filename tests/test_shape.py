"""Tests of safegen.ShapeChecked and friends, on real Keras 3 models (TensorFlow backend)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import safegen  # noqa: E402
from safegen import ShapeError  # noqa: E402

pytestmark = pytest.mark.keras

layers = keras.layers
ops = keras.ops

NO_WEIGHTS = "ignore:The model does not have any trainable weights:UserWarning"
ROOT = Path(__file__).resolve().parents[1]


def mean_bad(x: Any) -> Any:
    """The seed bug: returns (batch,) although (batch, 1) is declared."""
    return (x[:, 0] + x[:, 1]) / 2


def mean_good(x: Any) -> Any:
    """The fixed seed Lambda: (batch, 1)."""
    return ops.expand_dims((x[:, 0] + x[:, 1]) / 2, -1)


def seed_model(fn: Any = mean_bad, *, wrap: bool = True, **checked: Any) -> Any:
    """Input(2) -> Lambda mean (output_shape=(1,)), optionally wrapped."""
    inputs = keras.Input((2,))
    lam = layers.Lambda(fn, output_shape=(1,), name="mean")
    layer = safegen.ShapeChecked(lam, **checked) if wrap else lam
    return keras.Model(inputs, layer(inputs))


def add_model(*, wrap: bool) -> Any:
    """The issue's model: the buggy Lambda added to a Dense(1) branch."""
    inputs = keras.Input((2,))
    lam = layers.Lambda(mean_bad, output_shape=(1,), name="mean")
    mean = (safegen.ShapeChecked(lam) if wrap else lam)(inputs)
    return keras.Model(inputs, layers.Add()([mean, layers.Dense(1)(inputs)]))


def mean_data(n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random ints 0..99 and their row means, as float32."""
    x = np.random.default_rng(seed).integers(0, 100, (n, 2)).astype("float32")
    return x, x.mean(axis=1, keepdims=True)


class Liar(layers.Layer):
    """A layer whose compute_output_shape declares (batch, 1) but whose call drops the axis."""

    def call(self, x: Any) -> Any:
        return ops.sum(x, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], 1)


SEED_MSG = r"layer 'mean' \(Lambda\) returned rank 1, shape \(\w+,\); declared rank 2"


class TestSeedLambda:
    """The seed Lambda without expand_dims is caught wherever the model runs."""

    def test_predict(self) -> None:
        """predict raises ShapeError naming the Lambda, ranks and the expand_dims hint."""
        x, _ = mean_data()
        with pytest.raises(ShapeError, match=SEED_MSG) as info:
            seed_model().predict(x, verbose=0)
        assert "expand_dims(..., -1)" in str(info.value)
        assert "keepdims=True" in str(info.value)

    def test_fit_graph_mode(self) -> None:
        """fit in graph mode (tf.function) raises ShapeError while tracing."""
        x, y = mean_data()
        model = seed_model()
        model.compile("sgd", "mse")
        with pytest.raises(ShapeError, match=r"declared rank 2, shape \(None, 1\)"):
            model.fit(x, y, epochs=1, verbose=0)

    def test_fit_run_eagerly(self) -> None:
        """fit with run_eagerly=True raises ShapeError."""
        x, y = mean_data()
        model = seed_model()
        model.compile("sgd", "mse", run_eagerly=True)
        with pytest.raises(ShapeError, match=SEED_MSG):
            model.fit(x, y, epochs=1, verbose=0)

    def test_fit_jit_compile(self) -> None:
        """fit with jit_compile=True raises ShapeError (rank is static under XLA)."""
        x, y = mean_data()
        model = seed_model()
        model.compile("sgd", "mse", jit_compile=True)
        with pytest.raises(ShapeError, match=SEED_MSG):
            model.fit(x, y, epochs=1, verbose=0)

    def test_direct_eager_call(self) -> None:
        """Calling the layer eagerly on a tensor raises ShapeError."""
        layer = safegen.ShapeChecked(layers.Lambda(mean_bad, output_shape=(1,), name="mean"))
        with pytest.raises(ShapeError, match=r"returned rank 1, shape \(3,\)"):
            layer(ops.ones((3, 2)))

    def test_error_text_is_clean(self) -> None:
        """The ShapeError that reaches the user carries no Keras clutter (ANSI, call args)."""
        x, _ = mean_data()
        with pytest.raises(ShapeError) as info:
            seed_model().predict(x, verbose=0)
        text = str(info.value)
        assert text.startswith("layer 'mean' (Lambda) returned rank 1")
        assert "\x1b[" not in text and "Arguments received" not in text
        assert isinstance(info.value, ValueError)
        rebuilt = type(info.value)(text)  # Keras rebuilds exceptions as type(e)(message)
        assert isinstance(rebuilt, ShapeError) and str(rebuilt) == text

    def test_keras_wrapped_text_is_cleaned(self) -> None:
        """A ShapeError rebuilt from Keras's re-raise text keeps only safegen's message."""
        keras_text = (
            "Exception encountered when calling Lambda.call().\n\n"
            "\x1b[1mlayer 'mean' (Lambda) returned rank 1.\n  check: 'rank'\x1b[0m\n\n"
            "Arguments received by Lambda.call():\n  • args=<class 'inspect._empty'>"
        )
        assert (
            str(ShapeError(keras_text)) == "layer 'mean' (Lambda) returned rank 1.\n  check: 'rank'"
        )


class TestDisableSwitch:
    """SAFEGEN_DISABLE=1 switches layers' output checks off too (issue 19, bug 7)."""

    def test_no_shape_error_under_disable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The seed Lambda, ShapeChecked, predicts its (n,) output without a ShapeError."""
        from safegen import _config

        monkeypatch.setenv("SAFEGEN_DISABLE", "1")
        _config.reset()
        x, _ = mean_data()
        assert seed_model().predict(x, verbose=0).shape == (16,)


class TestCorrectLambda:
    """A correct Lambda, wrapped, behaves exactly like the plain one."""

    def test_outputs_identical(self) -> None:
        """predict of the wrapped model equals the unwrapped model's, bit for bit."""
        x, _ = mean_data()
        plain = seed_model(mean_good, wrap=False).predict(x, verbose=0)
        checked = seed_model(mean_good).predict(x, verbose=0)
        assert checked.shape == (16, 1)
        np.testing.assert_array_equal(checked, plain)

    def test_declared_output_shape_kept(self) -> None:
        """The model still reports the Lambda's declared output shape."""
        assert seed_model(mean_good).output_shape == (None, 1)

    @pytest.mark.filterwarnings(NO_WEIGHTS)
    def test_mean_task_loss_exactly_zero(self) -> None:
        """fit on the mean task (ints 0..99, target = mean) reaches a loss of exactly 0."""
        x, y = mean_data(64)
        model = seed_model(mean_good)
        model.compile("sgd", "mse")
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        assert history.history["loss"][-1] == 0.0

    def test_static_check_adds_no_op(self) -> None:
        """With check='rank' the traced graph has exactly the ops of the plain model."""

        def op_types(model: Any) -> list[str]:
            fn = tf.function(lambda t: model(t, training=True))
            graph = fn.get_concrete_function(tf.TensorSpec((None, 2))).graph
            return sorted(op.type for op in graph.get_operations())

        plain = op_types(seed_model(mean_good, wrap=False))
        assert op_types(seed_model(mean_good)) == plain
        assert op_types(seed_model(mean_good, check="shape", output_shape=(1,))) != plain


class TestAddModel:
    """The issue's Add() model: a (5, 5) broadcast instead of an error, unless wrapped."""

    def test_unwrapped_broadcasts_silently(self) -> None:
        """Without safegen, Keras 3 returns (5, 5) while declaring (None, 1)."""
        model = add_model(wrap=False)
        assert model.output_shape == (None, 1)
        assert model.predict(mean_data(5)[0], verbose=0).shape == (5, 5)

    def test_wrapped_raises_naming_the_lambda(self) -> None:
        """Wrapped, predict raises ShapeError naming the Lambda instead of returning (5, 5)."""
        with pytest.raises(ShapeError, match=r"layer 'mean' \(Lambda\) returned rank 1"):
            add_model(wrap=True).predict(mean_data(5)[0], verbose=0)


class TestNonLambda:
    """Layers other than Lambda are checked against their compute_output_shape."""

    def test_lying_compute_output_shape(self) -> None:
        """A custom layer whose compute_output_shape lies is caught, and named."""
        inputs = keras.Input((2,))
        model = keras.Model(inputs, safegen.ShapeChecked(Liar(name="liar"))(inputs))
        with pytest.raises(
            ShapeError,
            match=r"'liar' \(Liar\) returned rank 1.*\n  created at: tests/test_shape\.py:\d+\n"
            r"  declared by: Liar\.compute_output_shape\(\)",
        ):
            model.predict(mean_data(4)[0], verbose=0)

    def test_explicit_output_shape_wins(self) -> None:
        """An explicit output_shape overrides what the layer declares."""
        layer = safegen.ShapeChecked(layers.Dense(3), output_shape=(2,), check="shape")
        expected = r"declared shape \(4, 2\).*\n  created at: .*\n.*output_shape=\(2,\)"
        with pytest.raises(ShapeError, match=expected):
            layer(ops.ones((4, 5)))

    def test_dense_passes(self) -> None:
        """A truthful built-in layer passes both checks."""
        layer = safegen.ShapeChecked(layers.Dense(3), check="shape")
        assert tuple(layer(ops.ones((4, 5))).shape) == (4, 3)


USER_PROGRAM = """
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras
import numpy as np

import safegen


class Liar(keras.layers.Layer):
    def call(self, x):
        return keras.ops.sum(x, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def build():
    inputs = keras.Input((2,))
    return keras.Model(inputs, safegen.ShapeChecked(Liar(name="liar"))(inputs))  # line 21


try:
    build().predict(np.zeros((4, 2)), verbose=0)
except safegen.ShapeError as error:
    print(str(error))
"""


class TestUserFolderNames:
    """The user's code is told from safegen's and Keras's by where the packages are
    installed, not by folder names: a clone of safegen is a folder named `safegen`."""

    @pytest.mark.slow
    @pytest.mark.parametrize("folder", ["safegen", "keras", "tensorflow"])
    def test_created_at_names_the_users_line(self, folder: str, tmp_path: Path) -> None:
        """In a project folder named safegen, keras or tensorflow, holding a copy of the
        safegen package as a clone does, "created at" names the user's line."""
        import shutil

        project = tmp_path / folder
        shutil.copytree(
            ROOT / "safegen", project / "safegen", ignore=shutil.ignore_patterns("__pycache__")
        )
        (project / "model.py").write_text(USER_PROGRAM, encoding="utf-8")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGEN_")}
        result = subprocess.run(
            [sys.executable, "model.py"],
            cwd=project,
            env={**clean, "PYTHONPATH": str(project), "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "'liar' (Liar) returned rank 1" in result.stdout, result.stdout
        assert "  created at: model.py:21\n" in result.stdout, result.stdout


class TestCheckShape:
    """check='shape' compares every declared dimension and the batch dimension."""

    @staticmethod
    def identity(check: str, output_shape: tuple[int | None, ...]) -> Any:
        inputs = keras.Input((2,))
        lam = layers.Lambda(lambda t: t, output_shape=output_shape, name="ident")
        return keras.Model(inputs, safegen.ShapeChecked(lam, check=check)(inputs))

    def test_wrong_dimension_caught(self) -> None:
        """A wrong non-batch dimension raises ShapeError with both shapes."""
        with pytest.raises(ShapeError, match=r"returned shape \(4, 2\); declared shape \(4, 1\)"):
            self.identity("shape", (1,)).predict(mean_data(4)[0], verbose=0)

    def test_wrong_dimension_caught_in_fit(self) -> None:
        """The wrong dimension is caught while fit traces (static, so a ShapeError)."""
        model = self.identity("shape", (1,))
        model.compile("sgd", "mse")
        x, _ = mean_data(4)
        with pytest.raises(ShapeError, match=r"dimension 1: 2 != 1"):
            model.fit(x, x, verbose=0)

    def test_rank_mode_ignores_dimensions(self) -> None:
        """check='rank' lets the same wrong dimension through."""
        out = self.identity("rank", (1,)).predict(mean_data(4)[0], verbose=0)
        assert out.shape == (4, 2)

    def test_none_dimension_accepted(self) -> None:
        """A declared None dimension matches any size."""
        out = self.identity("shape", (None,)).predict(mean_data(4)[0], verbose=0)
        assert out.shape == (4, 2)

    def test_batch_mismatch_eager(self) -> None:
        """An output whose batch differs from the input's raises ShapeError eagerly."""
        lam = layers.Lambda(lambda t: ops.mean(t, axis=0, keepdims=True), output_shape=(2,))
        with pytest.raises(ShapeError, match=r"batch dimension 1.*input's batch dimension is 3"):
            safegen.ShapeChecked(lam, check="shape")(ops.ones((3, 2)))

    def test_batch_mismatch_graph_runtime_assertion(self) -> None:
        """In graph mode an unknown batch gets a run-time assertion carrying the message."""
        inputs = keras.Input((2,))
        lam = layers.Lambda(lambda t: ops.mean(t, axis=0, keepdims=True), output_shape=(2,))
        layer = safegen.ShapeChecked(lam, check="shape")
        fn = tf.function(keras.Model(inputs, layer(inputs)))
        fn.get_concrete_function(tf.TensorSpec((None, 2)))
        with pytest.raises(tf.errors.InvalidArgumentError, match="ShapeError: .*batch dimension"):
            fn(tf.ones((3, 2)))


class TestNestedOutputs:
    """Tuple, list and dict outputs are checked leaf by leaf."""

    def test_tuple_leaf_named(self) -> None:
        """The wrong leaf of a tuple output is named by its index."""
        lam = layers.Lambda(lambda t: (t[:, :1], t[:, 0]), output_shape=((1,), (1,)))
        with pytest.raises(ShapeError, match=r"output \[1\] returned rank 1"):
            safegen.ShapeChecked(lam)(ops.ones((3, 2)))

    def test_dict_explicit_shapes(self) -> None:
        """A dict output is compared with a dict output_shape, key by key."""
        lam = layers.Lambda(lambda t: {"a": t, "b": t[:, :1]})
        ok = safegen.ShapeChecked(lam, output_shape={"a": (2,), "b": (1,)}, check="shape")
        assert tuple(ok(ops.ones((3, 2)))["b"].shape) == (3, 1)
        lam2 = layers.Lambda(lambda t: {"a": t, "b": t[:, :1]})
        bad = safegen.ShapeChecked(lam2, output_shape={"a": (2,), "b": (2,)}, check="shape")
        with pytest.raises(ShapeError, match=r"output \['b'\] returned shape \(3, 1\)"):
            bad(ops.ones((3, 2)))

    def test_output_structure_shows_shapes_unquoted(self) -> None:
        """Two outputs where one is declared: the structure line shows the shapes as
        tuples, not as quoted strings."""
        lam = layers.Lambda(lambda t: (t, 2 * t), output_shape=(2,))
        with pytest.raises(ShapeError, match="returned 2 output tensor") as info:
            safegen.ShapeChecked(lam)(ops.ones((3, 2)))
        assert "  output structure: ((3, 2), (3, 2))" in str(info.value).splitlines()

    def test_leaf_count_mismatch(self) -> None:
        """Declaring two outputs for a layer that returns one raises ShapeError."""
        lam = layers.Lambda(lambda t: t)
        with pytest.raises(ShapeError, match="returned 1 output tensor"):
            safegen.ShapeChecked(lam, output_shape=[(2,), (2,)])(ops.ones((3, 2)))


class TestBehavesLikeLayer:
    """A checked layer keeps its weights, training flag and masks."""

    def test_same_object(self) -> None:
        """ShapeChecked returns the layer itself, an instance of its own class."""
        dense = layers.Dense(2)
        assert safegen.ShapeChecked(dense) is dense
        assert isinstance(dense, layers.Dense) and type(dense).__name__ == "Dense"

    def test_training_flag_passed(self) -> None:
        """Dropout drops only with training=True."""
        checked = safegen.ShapeChecked(layers.Dropout(0.5, seed=1))
        x = ops.ones((4, 8))
        np.testing.assert_array_equal(ops.convert_to_numpy(checked(x, training=False)), 1.0)
        assert np.any(ops.convert_to_numpy(checked(x, training=True)) == 0.0)

    def test_mask_propagates(self) -> None:
        """The wrapped Embedding's mask reaches the output, and through a wrapped Dropout."""
        tokens = ops.convert_to_tensor(np.array([[1, 2, 0], [3, 0, 0]]))
        emb = safegen.ShapeChecked(layers.Embedding(5, 2, mask_zero=True))
        drop = safegen.ShapeChecked(layers.Dropout(0.1), check="shape")
        out = drop(emb(tokens))
        mask = ops.convert_to_numpy(out._keras_mask)
        np.testing.assert_array_equal(mask, [[True, True, False], [True, False, False]])


class TestSaving:
    """Models with checked layers survive .keras save and load, still checking."""

    def test_round_trip_keeps_checking(self, tmp_path: Path) -> None:
        """The reloaded buggy model still raises ShapeError."""
        path = tmp_path / "m.keras"
        seed_model().save(path)
        custom = {"mean_bad": mean_bad}  # a named function in a Lambda is saved by name
        loaded = keras.models.load_model(path, safe_mode=False, custom_objects=custom)
        assert isinstance(loaded.layers[-1], layers.Lambda)
        with pytest.raises(ShapeError, match=SEED_MSG):
            loaded.predict(mean_data(4)[0], verbose=0)

    def test_round_trip_config_and_weights(self, tmp_path: Path) -> None:
        """output_shape, check and the wrapped layer's weights are restored."""
        inputs = keras.Input((3,))
        out = safegen.ShapeChecked(layers.Dense(2), output_shape=(2,), check="shape")(inputs)
        model = keras.Model(inputs, out)
        path = tmp_path / "d.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=False)
        layer = loaded.layers[-1]
        state = layer.__dict__["_safegen_check"]
        assert (state.check, state.output_shape) == ("shape", (2,))
        x = np.ones((2, 3), "float32")
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    def test_anonymous_lambda_round_trip(self, tmp_path: Path) -> None:
        """A check_layers model with an anonymous lambda reloads and still checks."""
        model = keras.Sequential(
            [keras.Input((2,)), layers.Lambda(lambda t: t[:, 0], output_shape=(1,), name="first")]
        )
        path = tmp_path / "s.keras"
        safegen.check_layers(model)
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=False)
        with pytest.raises(ShapeError, match=r"layer 'first' \(Lambda\) returned rank 1"):
            loaded.predict(mean_data(4)[0], verbose=0)

    def test_clone_model_keeps_the_check(self) -> None:
        """keras.models.clone_model copies the check with its settings."""
        dense = safegen.ShapeChecked(layers.Dense(2, name="d"), output_shape=(1,), check="shape")
        clone = keras.models.clone_model(keras.Sequential([keras.Input((3,)), dense]))
        copied = clone.get_layer("d")
        assert copied is not dense and "_safegen_check" in vars(copied)
        assert vars(copied)["_safegen_check"].output_shape == (1,)
        with pytest.raises(ShapeError, match=r"declared shape \(4, 1\)"):
            copied(ops.ones((4, 3)))

    @pytest.mark.slow
    def test_fresh_process_loads_and_checks(self, tmp_path: Path) -> None:
        """A new program that imports keras, then safegen, loads the file and still checks."""
        model = keras.Sequential(
            [keras.Input((2,)), layers.Lambda(lambda t: t[:, 0], output_shape=(1,), name="first")]
        )
        safegen.check_layers(model)
        model.save(tmp_path / "s.keras")
        code = textwrap.dedent(
            f"""
            import numpy as np, keras, safegen
            model = keras.models.load_model({str(tmp_path / "s.keras")!r}, safe_mode=False)
            try:
                model.predict(np.ones((3, 2)), verbose=0)
            except safegen.ShapeError as e:
                print(str(e).splitlines()[0])
            """
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
        )
        assert out.stdout.strip().startswith("layer 'first' (Lambda) returned rank 1"), out.stderr

    def test_unwrapped_model_saves_plain(self, tmp_path: Path) -> None:
        """After unwrap, the saved config carries no safegen entry nor registered name."""
        model = seed_model(mean_good)
        safegen.unwrap(model)
        model.save(tmp_path / "p.keras")
        import zipfile

        with zipfile.ZipFile(tmp_path / "p.keras") as archive:
            config = archive.read("config.json").decode()
        assert "safegen" not in config


def is_checked(layer: Any) -> bool:
    """Whether safegen checks ``layer`` (its check settings are attached to it)."""
    return "_safegen_check" in vars(layer)


class TestCheckLayers:
    """check_layers checks a model's Lambdas (or chosen types) in place; unwrap undoes it."""

    @staticmethod
    def sequential() -> Any:
        return keras.Sequential(
            [
                keras.Input((2,)),
                layers.Dense(2, name="dense"),
                layers.Lambda(lambda t: ops.sum(t, -1), output_shape=(1,), name="total"),
            ]
        )

    def test_sequential(self) -> None:
        """Every Lambda of a Sequential is checked in place and returned; the bug is caught."""
        model = self.sequential()
        checked = safegen.check_layers(model)
        assert checked == [model.get_layer("total")]
        assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Lambda"]
        with pytest.raises(ShapeError, match=r"layer 'total' \(Lambda\)"):
            model.predict(mean_data(4)[0], verbose=0)

    def test_functional_layer_types(self) -> None:
        """layer_types chooses which layers are checked in a functional model."""
        model = add_model(wrap=False)
        checked = safegen.check_layers(model, layer_types=(layers.Dense,), check="shape")
        assert [type(layer).__name__ for layer in checked] == ["Dense"]
        assert is_checked(checked[0]) and not is_checked(model.get_layer("mean"))
        assert checked[0].__dict__["_safegen_check"].check == "shape"

    @pytest.mark.slow
    def test_compiled_model_not_recompiled(self) -> None:
        """check_layers keeps the compiled model (plain-function loss included) and its traces
        are redone: the Lambda fitted before is caught at the next fit."""

        def my_loss(y_true: Any, y_pred: Any) -> Any:
            return ops.mean(ops.square(y_true - y_pred))

        model = keras.Sequential(
            [keras.Input((2,)), layers.Lambda(mean_bad, output_shape=(1,), name="mean")]
        )
        model.compile("sgd", my_loss)
        x, y = mean_data(8)
        with pytest.warns(UserWarning, match="trainable weights"):
            model.fit(x, y, verbose=0)  # silently "works" without the check
        optimizer = model.optimizer
        safegen.check_layers(model)
        assert model.optimizer is optimizer and model.loss is my_loss
        with pytest.raises(ShapeError, match=SEED_MSG):
            model.fit(x, y, verbose=0)

    def test_nothing_matched_warns(self) -> None:
        """A model with no Lambda gets a SafegenWarning and an empty list."""
        model = keras.Sequential([keras.Input((2,)), layers.Dense(1)])
        with pytest.warns(safegen.SafegenWarning, match="no layer of type Lambda") as record:
            assert safegen.check_layers(model) == []
        assert record[0].filename == __file__

    def test_unwrap_switches_checks_off_in_place(self) -> None:
        """unwrap returns the same model with plain layers, which no longer check."""
        model = self.sequential()
        safegen.check_layers(model)
        assert safegen.unwrap(model) is model
        assert [type(layer) for layer in model.layers] == [layers.Dense, layers.Lambda]
        assert not is_checked(model.get_layer("total"))
        assert model.predict(mean_data(4)[0], verbose=0).shape == (4,)
        dense = layers.Dense(1)
        assert safegen.unwrap(safegen.ShapeChecked(dense)) is dense
        assert type(dense) is layers.Dense

    def test_nested_and_subclassed(self) -> None:
        """check_layers reaches nested models and subclassed models' layers; unwrap too."""
        inner_in = keras.Input((2,))
        lam = layers.Lambda(mean_good, output_shape=(1,), name="lam")
        inner = keras.Model(inner_in, lam(inner_in), name="inner")
        inputs = keras.Input((2,))
        model = keras.Model(inputs, layers.Dense(1, name="out")(inner(inputs)))
        checked = safegen.check_layers(model, layer_types=(layers.Lambda, layers.Dense))
        assert sorted(layer.name for layer in checked) == ["lam", "out"]
        safegen.unwrap(model)
        assert type(lam) is layers.Lambda

        class Sub(keras.Model):
            def __init__(self) -> None:
                super().__init__()
                self.mean = layers.Lambda(mean_bad, output_shape=(1,), name="mean")

            def call(self, x: Any) -> Any:
                return self.mean(x)

        sub = Sub()
        assert [layer.name for layer in safegen.check_layers(sub)] == ["mean"]
        with pytest.raises(ShapeError, match=r"layer 'mean' \(Lambda\)"):
            sub(ops.ones((3, 2)))


class TestShapeCheckedLambda:
    """ShapeCheckedLambda is the short form of ShapeChecked(Lambda(...))."""

    def test_catches_and_passes(self) -> None:
        """The short form catches the seed bug and lets the fixed Lambda through."""
        bad = safegen.ShapeCheckedLambda(mean_bad, output_shape=(1,), name="mean")
        assert isinstance(bad, layers.Lambda) and is_checked(bad)
        with pytest.raises(ShapeError, match=r"layer 'mean' \(Lambda\)"):
            bad(ops.ones((3, 2)))
        good = safegen.ShapeCheckedLambda(mean_good, (1,), check="shape")
        assert tuple(good(ops.ones((3, 2))).shape) == (3, 1)


class TestBadArguments:
    """Bad arguments get clear errors naming the object and what was expected."""

    def test_not_a_layer(self) -> None:
        """ShapeChecked('x') is a TypeError."""
        with pytest.raises(TypeError, match=r"layer must be a Keras 3 .*got 'x' of type str"):
            safegen.ShapeChecked("x")

    def test_bad_check(self) -> None:
        """An unknown check= is a ValueError listing the valid values."""
        with pytest.raises(ValueError, match=r"check must be one of 'rank', 'shape'; got 'size'"):
            safegen.ShapeChecked(layers.Dense(1), check="size")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("output_shape", "fragment"),
        [(1, r"did you mean \(1,\)"), ((-1,), ">= 0 or None"), ("ab", "got 'ab'")],
    )
    def test_bad_output_shape(self, output_shape: Any, fragment: str) -> None:
        """An output_shape that is not a shape is a TypeError saying what a shape is."""
        with pytest.raises(TypeError, match=rf"output_shape must be a shape.*{fragment}"):
            safegen.ShapeChecked(layers.Dense(1), output_shape=output_shape)

    def test_lambda_not_callable(self) -> None:
        """ShapeCheckedLambda with a non-callable function is a TypeError."""
        with pytest.raises(TypeError, match="function must be callable"):
            safegen.ShapeCheckedLambda(3, (1,))  # type: ignore[arg-type]

    def test_check_layers_not_a_model(self) -> None:
        """check_layers on a non-Keras object is a TypeError; bad layer_types too."""
        with pytest.raises(TypeError, match=r"model must be a Keras 3 .*got 'm' of type str"):
            safegen.check_layers("m")
        with pytest.raises(TypeError, match="layer_types"):
            safegen.check_layers(add_model(wrap=False), layer_types=("Lambda",))


class TestPackaging:
    """The public names, serialization name and light import."""

    def test_public_names(self) -> None:
        """The public names are plain functions shown as safegen.*; the saved name is registered."""
        from safegen import _layers
        from safegen.integrations.keras import layers as keras_layers

        assert safegen.ShapeChecked is _layers.ShapeChecked
        assert safegen.ShapeChecked.__module__ == "safegen"
        checked_class = type(safegen.ShapeChecked(layers.Dense(1)))
        assert keras.saving.get_registered_name(checked_class) == "safegen>ShapeChecked"
        assert keras.saving.get_registered_object("safegen>ShapeChecked") is keras_layers._Loader

    def test_import_does_not_import_keras(self) -> None:
        """`import safegen` leaves Keras and TensorFlow unimported."""
        code = "import sys, safegen; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        assert out.stdout.split() == ["False", "False"]

    def test_help_is_light(self) -> None:
        """pydoc of safegen imports no framework and lists no inherited Keras Layer method."""
        code = (
            "import sys, pydoc, safegen\n"
            "text = pydoc.render_doc(safegen)\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules,"
            " 'add_weight' in text, 'ShapeChecked(' in text)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        assert out.stdout.split() == ["False", "False", "False", "True"]


class Scaled(layers.Layer):
    """A layer with a non-tensor call argument."""

    def call(self, x: Any, scale: float = 1.0) -> Any:
        return x * scale

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def summary_text(model: Any) -> str:
    """The model's summary as text."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


class TestTransparent:
    """A checked layer is indistinguishable from the plain one except for the check."""

    def test_multi_head_attention_signatures(self) -> None:
        """MHA takes (query, value) positionally and by keyword, checked, like the plain one."""
        q, v = keras.Input((4, 8)), keras.Input((6, 8))
        mha = safegen.ShapeChecked(layers.MultiHeadAttention(2, 4, name="mha"), check="shape")
        model = keras.Model([q, v], [mha(q, v), mha(query=q, value=v, use_causal_mask=False)])
        xq, xv = np.ones((3, 4, 8), "float32"), np.ones((3, 6, 8), "float32")
        a, b = model.predict([xq, xv], verbose=0)
        assert a.shape == b.shape == (3, 4, 8)

    def test_return_attention_scores_toggled(self) -> None:
        """The same layer called with and without return_attention_scores gives no false error."""
        mha = safegen.ShapeChecked(layers.MultiHeadAttention(2, 4))
        q, v = ops.ones((2, 4, 8)), ops.ones((2, 6, 8))
        out, scores = mha(q, v, return_attention_scores=True)
        assert tuple(scores.shape) == (2, 2, 4, 6)
        assert tuple(mha(q, v).shape) == (2, 4, 8)
        assert tuple(mha(q, v, return_attention_scores=True)[1].shape) == (2, 2, 4, 6)

    def test_keras_attention_scores_declaration(self) -> None:
        """check='shape' finds that Keras 3.15's MultiHeadAttention declares its attention
        scores as (batch, heads, Tq, Tq) where it returns (batch, heads, Tq, Tv)."""
        mha = safegen.ShapeChecked(layers.MultiHeadAttention(2, 4), check="shape")
        with pytest.raises(ShapeError, match=r"output \[1\] returned shape \(2, 2, 4, 6\); "
                           r"declared shape \(2, 2, 4, 4\)"):  # fmt: skip
            mha(ops.ones((2, 4, 8)), ops.ones((2, 6, 8)), return_attention_scores=True)

    def test_non_tensor_argument(self) -> None:
        """Non-tensor call arguments reach the layer, in eager calls and in a model."""
        layer = safegen.ShapeChecked(Scaled(), check="shape")
        np.testing.assert_array_equal(ops.convert_to_numpy(layer(ops.ones((2, 3)), scale=3.0)), 3)
        inputs = keras.Input((3,))
        model = keras.Model(inputs, layer(inputs, scale=2.0))
        np.testing.assert_array_equal(model.predict(np.ones((2, 3)), verbose=0), 2.0)

    def test_input_validation_at_build(self) -> None:
        """A Dense built for 4 features refuses 5 when the model is built, as the plain one."""
        messages = []
        for check in (False, True):
            dense = layers.Dense(2, name="d")
            dense.build((None, 4))
            if check:
                safegen.ShapeChecked(dense)
            with pytest.raises(ValueError, match="incompatible with the layer") as info:
                inputs = keras.Input((5,))
                keras.Model(inputs, dense(inputs))
            messages.append(str(info.value))
        assert messages[0] == messages[1]

    def test_build_without_shape_and_stateless(self) -> None:
        """build() without a shape creates an Embedding's weights; stateless layers start built."""
        emb = safegen.ShapeChecked(layers.Embedding(10, 3))
        emb.build()
        assert [tuple(w.shape) for w in emb.weights] == [(10, 3)]
        for make in (layers.Flatten, lambda: layers.Dropout(0.5), lambda: layers.Dense(2)):
            assert safegen.ShapeChecked(make()).built is make().built

    def test_dtype_policy_and_autocast(self) -> None:
        """Under mixed_float16 the dtype policy and autocast=False behave as for the plain layer."""
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            x = ops.ones((2, 3), dtype="float32")
            plain = layers.Lambda(lambda t: t, autocast=False)
            checked = safegen.ShapeChecked(layers.Lambda(lambda t: t, autocast=False))
            assert checked.dtype_policy.name == plain.dtype_policy.name == "mixed_float16"
            assert checked(x).dtype == plain(x).dtype == "float32"
            dense = safegen.ShapeChecked(layers.Dense(2))
            assert dense(x).dtype == layers.Dense(2)(x).dtype == "float16"
        finally:
            keras.config.set_dtype_policy(previous)

    def test_bidirectional_and_time_distributed(self) -> None:
        """Bidirectional and TimeDistributed accept a checked layer; both directions check."""
        bi = layers.Bidirectional(safegen.ShapeChecked(layers.LSTM(3, return_sequences=True)))
        assert tuple(bi(ops.ones((2, 5, 4))).shape) == (2, 5, 6)
        assert "_safegen_check" in vars(bi.backward_layer)
        td = layers.TimeDistributed(safegen.ShapeChecked(layers.Dense(3), check="shape"))
        assert tuple(td(ops.ones((2, 5, 4))).shape) == (2, 5, 3)

    def test_quantize(self) -> None:
        """Dense.quantize, which refuses subclasses, works on a checked Dense that still checks."""
        dense = safegen.ShapeChecked(layers.Dense(4), output_shape=(3,), check="shape")
        dense.build((None, 8))
        dense.quantize("int8")
        assert dense.quantization_mode == "int8" and type(dense).__name__ == "Dense"
        with pytest.raises(ShapeError, match=r"declared shape \(2, 3\)"):
            dense(ops.ones((2, 8)))

    def test_variable_paths_and_weights_file(self, tmp_path: Path) -> None:
        """Variable paths match the plain model, and .weights.h5 files move both ways."""

        def build(check: bool) -> Any:
            keras.utils.set_random_seed(int(check))
            inputs = keras.Input((2,))
            dense = layers.Dense(3, name="dense")
            lam = layers.Lambda(mean_good, output_shape=(1,), name="mean")
            if check:
                safegen.ShapeChecked(dense)
                safegen.ShapeChecked(lam)
            return keras.Model(inputs, lam(dense(inputs)))

        plain, checked = build(False), build(True)
        assert [v.path for v in checked.weights] == [v.path for v in plain.weights]
        x, _ = mean_data(4)
        checked.save_weights(tmp_path / "c.weights.h5")
        plain.load_weights(tmp_path / "c.weights.h5")
        np.testing.assert_array_equal(plain.predict(x, verbose=0), checked.predict(x, verbose=0))
        keras.utils.set_random_seed(7)
        plain2 = build(False)
        plain2.save_weights(tmp_path / "p.weights.h5")
        checked.load_weights(tmp_path / "p.weights.h5")
        np.testing.assert_array_equal(plain2.predict(x, verbose=0), checked.predict(x, verbose=0))

    def test_name_and_summary(self) -> None:
        """After check_layers, get_layer finds the Lambda and the summary is unchanged."""
        model = add_model(wrap=False)
        before = summary_text(model)
        lam = model.get_layer("mean")
        safegen.check_layers(model)
        assert model.get_layer("mean") is lam
        assert summary_text(model) == before

    def test_get_config_is_plain(self) -> None:
        """get_config() equals the plain layer's, so Dense.from_config gives a plain Dense."""
        checked = safegen.ShapeChecked(layers.Dense(2, name="d"), (2,), check="shape")
        config = checked.get_config()
        assert config == layers.Dense(2, name="d").get_config()
        assert type(layers.Dense.from_config(config)) is layers.Dense

    def test_export_and_saved_model(self, tmp_path: Path) -> None:
        """model.export() and tf.saved_model.save() work with checked layers (caches filled)."""
        model = add_model(wrap=False)
        model.get_layer("mean").function = mean_good
        safegen.check_layers(model, layer_types=(layers.Lambda, layers.Dense), check="shape")
        x, _ = mean_data(4)
        expected = model.predict(x, verbose=0)
        model.export(tmp_path / "exported", verbose=False)
        tf.saved_model.save(model, str(tmp_path / "saved"))
        exported = tf.saved_model.load(str(tmp_path / "exported"))
        served = exported.serve(tf.constant(x))
        np.testing.assert_allclose(served.numpy(), expected, rtol=1e-6)
        saved = tf.saved_model.load(str(tmp_path / "saved"))
        assert saved is not None

    def test_unknown_rank_caught_at_run_time(self) -> None:
        """squeeze() without an axis on a batch of 1: rank unknown at trace, caught when run."""
        inputs = keras.Input((1, 3))
        lam = layers.Lambda(lambda t: ops.squeeze(t), output_shape=(3,), name="squeezed")
        model = keras.Model(inputs, safegen.ShapeChecked(lam)(inputs))
        fn = tf.function(model)
        fn.get_concrete_function(tf.TensorSpec((None, 1, 3)))
        assert tuple(fn(tf.ones((4, 1, 3))).shape) == (4, 3)
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=r"ShapeError: layer .{1,3}squeezed.{1,3} \(Lambda\) rank is not 2",
        ):
            fn(tf.ones((1, 1, 3)))

    @pytest.mark.filterwarnings(NO_WEIGHTS)
    def test_unknown_rank_caught_under_xla(self) -> None:
        """Under jit_compile=True the same bug fails XLA's shape check instead of passing."""
        inputs = keras.Input((1, 3))
        lam = layers.Lambda(lambda t: ops.squeeze(t), output_shape=(3,), name="squeezed")
        model = keras.Model(inputs, safegen.ShapeChecked(lam)(inputs))
        model.compile("sgd", "mse", jit_compile=True)
        x, y = np.ones((4, 1, 3), "float32"), np.ones((4, 3), "float32")
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(2), shuffle=False, verbose=0)
        with pytest.raises(tf.errors.InvalidArgumentError, match="not compatible with expected"):
            model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(1), shuffle=False, verbose=0)


class TestInstallLambdaChecks:
    """install_lambda_checks checks every Lambda until undone, changing nothing else."""

    def test_before_and_after_install(self) -> None:
        """Lambdas built before and after the install are checked; undo stops it."""
        from safegen.integrations.keras.layers import install_lambda_checks

        before = layers.Lambda(mean_bad, output_shape=(1,), name="mean")
        undo = install_lambda_checks()
        try:
            after = layers.Lambda(mean_bad, output_shape=(1,), name="mean")
            for layer in (before, after):
                with pytest.raises(ShapeError, match=r"layer 'mean' \(Lambda\) returned rank 1"):
                    layer(ops.ones((3, 2)))
        finally:
            undo()
        undo()  # a second undo does nothing
        assert tuple(before(ops.ones((3, 2))).shape) == (3,)

    @pytest.mark.filterwarnings(NO_WEIGHTS)
    def test_fit_predict_and_save_unchanged(self, tmp_path: Path) -> None:
        """Graph-mode fit and predict raise for the bug; what model.save writes is unchanged."""
        from safegen.integrations.keras.layers import install_lambda_checks

        x, y = mean_data(8)
        good = seed_model(mean_good, wrap=False)
        good.save(tmp_path / "plain.keras")
        undo = install_lambda_checks()
        try:
            bad = seed_model(wrap=False)
            bad.compile("sgd", "mse")
            with pytest.raises(ShapeError, match=SEED_MSG):
                bad.fit(x, y, verbose=0)
            with pytest.raises(ShapeError, match=SEED_MSG):
                bad.predict(x, verbose=0)
            good.predict(x, verbose=0)
            good.save(tmp_path / "installed.keras")
        finally:
            undo()
        import zipfile

        def contents(name: str) -> dict[str, bytes]:
            with zipfile.ZipFile(tmp_path / name) as archive:
                return {n: archive.read(n) for n in archive.namelist() if n != "metadata.json"}

        assert contents("installed.keras") == contents("plain.keras")

    def test_nested_installs_and_no_double_check(self) -> None:
        """Installs nest; a ShapeChecked Lambda is checked once; the session counts the checks."""
        from safegen.integrations.keras.layers import install_lambda_checks

        original = layers.Lambda.call
        # A session that installs no Lambda check of its own (shapes=False).
        with safegen.enabled(shapes=False) as session:
            first, second = install_lambda_checks(), install_lambda_checks("shape")
            lam = safegen.ShapeChecked(layers.Lambda(mean_good, output_shape=(1,), name="m"))
            lam(ops.ones((3, 2)))
            first()
            bad = layers.Lambda(mean_bad, output_shape=(1,), name="bad")
            with pytest.raises(ShapeError):
                bad(ops.ones((3, 2)))
            second()
            assert layers.Lambda.call is original
        layers_checked = session.as_dict()["layers"]
        records = {r["name"]: (r["checks"], r["shape_errors"]) for r in layers_checked}
        assert records == {"m": (1, 0), "bad": (1, 1)}


class TestShapeFindings:
    """A layer's ShapeError is a finding of kind LAYER_SHAPE, counted on the one path."""

    def test_layer_shape_error_counted_by_kind_and_failing(self) -> None:
        """A ShapeError a Lambda raised is one layer_shapes finding in counts() and
        failures(), counted as raised (not in failures(raised=False)), in the summary."""
        with safegen.enabled() as session:
            good = layers.Lambda(mean_good, output_shape=(1,), name="good")
            good(ops.ones((3, 2)))
            assert session.failures() == {}
            bad = layers.Lambda(mean_bad, output_shape=(1,), name="bad")
            with pytest.raises(ShapeError, match=r"^layer 'bad' \(Lambda\) returned rank 1"):
                bad(ops.ones((3, 2)))
            counts = session.counts()
            assert (counts["layer_shapes"], counts["loss_broadcasts"]) == (1, 0)
            assert session.failures() == {"layer_shapes": 1}
            assert session.failures(raised=False) == {}  # the error decides where it went
            data = session.as_dict()
        totals = data["totals"]
        assert (totals["shape_errors"], totals["layers_checked"], totals["violations"]) == (1, 2, 1)
        records = {r["name"]: (r["checks"], r["shape_errors"]) for r in data["layers"]}
        assert records == {"good": (1, 0), "bad": (1, 1)}
        assert data["shape_errors"][0].startswith("layer 'bad' (Lambda) returned rank 1")
        summary = session.summary()
        assert "1 violation(s) (1 layer shape error(s)); 2 layer(s) checked" in summary


TF_KERAS_SCRIPT = textwrap.dedent(
    """
    import numpy as np, safegen, tf_keras as keras
    from tf_keras import backend as K
    from tf_keras.layers import Input, Lambda
    from safegen.integrations.tf_keras.layers import install_lambda_checks

    def batches():
        while True:
            x = np.random.randint(0, 100, (8, 2)).astype("float32")
            yield x, x.mean(1, keepdims=True)

    inp = Input((2,))
    mean = Lambda(lambda x: (x[:, 0] + x[:, 1]) / 2, output_shape=(1,), name="mean")
    model = keras.Model(inp, mean(inp))
    model.compile("sgd", "mse")
    print("checked", [layer.name for layer in safegen.check_layers(model)])
    for run in (lambda: model.fit(batches(), steps_per_epoch=2, verbose=0),
                lambda: model.predict(np.ones((4, 2)), verbose=0)):
        try:
            run()
            print("no error")
        except safegen.ShapeError as e:
            print(str(e).splitlines()[0])
    good = Lambda(lambda x: K.expand_dims((x[:, 0] + x[:, 1]) / 2, -1), output_shape=(1,))
    fixed = keras.Model(inp, safegen.ShapeChecked(good)(inp))
    fixed.compile("sgd", "mse")
    print("loss", fixed.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0).history["loss"])
    safegen.unwrap(fixed)
    print("plain again", type(good) is Lambda)
    undo = install_lambda_checks()
    try:
        Lambda(lambda x: x[:, 0], output_shape=(1,), name="late")(np.ones((3, 2), "float32"))
    except safegen.ShapeError as e:
        print(str(e).splitlines()[0])
    undo()
    """
)


class TestTfKeras:
    """The same checks on Keras 2 (tf_keras) layers, in a subprocess."""

    @pytest.mark.slow
    def test_article_lambda(self) -> None:
        """The article's Lambda without K.expand_dims raises ShapeError in tf_keras fit and
        predict; the fixed one trains to a loss of 0; unwrap and install_lambda_checks work."""
        pytest.importorskip("tf_keras")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TF_USE_LEGACY_KERAS", None)
        out = subprocess.run(
            [sys.executable, "-c", TF_KERAS_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        error = "layer 'mean' (Lambda) returned rank 1, shape (None,); declared rank 2, " + (
            "shape (None, 1)."
        )
        assert out.stdout.splitlines() == [
            "checked ['mean']",
            error,
            error,
            "loss [0.0, 0.0]",
            "plain again True",
            "layer 'late' (Lambda) returned rank 1, shape (3,); declared rank 2, shape (3, 1).",
        ]


@pytest.mark.slow
class TestKerasSuite:
    """tools/keras_suite.py runs Keras's own layer tests plain and with every layer checked.

    It DOWNLOADS the installed Keras's source distribution from PyPI with pip (cached in
    /tmp/safegen-keras-suite); without network the test is skipped (after about 30 s
    on 2 loaded cores: pip gives up after one retry)."""

    def test_quick_run(self, tmp_path: Path) -> None:
        """Keras's Lambda tests (from its sdist, downloaded with pip) give the same outcomes
        with every layer checked as without; skipped when the download fails."""
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tools" / "keras_suite.py"),
                "--quick",
                "--out",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=600,
        )
        if out.returncode == 3:
            pytest.skip("the Keras source distribution could not be downloaded")
        assert out.returncode == 0, out.stdout + out.stderr[-3000:]
        report = json.loads((tmp_path / "keras_suite_quick.json").read_text())
        assert report["counts"]["plain"] == report["counts"]["checked"]
        assert report["counts"]["checked"]["passed"] > 0
        assert report["layers_checked"]["checked"] > 0 and not report["differ"]


JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras, safegen
    from keras import layers, ops

    def model(fn):
        inputs = keras.Input((2,))
        lam = layers.Lambda(fn, output_shape=(1,), name="mean")
        return keras.Model(inputs, safegen.ShapeChecked(lam)(inputs))

    x = np.random.default_rng(0).integers(0, 100, (16, 2)).astype("float32")
    y = x.mean(1, keepdims=True)
    bad = lambda t: (t[:, 0] + t[:, 1]) / 2
    good = lambda t: ops.expand_dims((t[:, 0] + t[:, 1]) / 2, -1)
    for kwargs in ({}, {"run_eagerly": True}, {"jit_compile": True}):
        m = model(bad)
        m.compile("sgd", "mse", **kwargs)
        try:
            m.fit(x, y, verbose=0)
        except safegen.ShapeError as e:
            assert "layer 'mean' (Lambda) returned rank 1" in str(e)
        else:
            raise SystemExit(f"no ShapeError with {kwargs}")
    m = model(good)
    assert m.predict(x, verbose=0).shape == (16, 1)
    print("jax ok")
    """
)


@pytest.mark.slow
class TestJaxBackend:
    """The core checks under KERAS_BACKEND=jax, in a subprocess."""

    @pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
    def test_core_under_jax(self) -> None:
        """The seed bug raises ShapeError under jax (graph, eager, jit); the fix passes."""
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        out = subprocess.run(
            [sys.executable, "-c", JAX_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert "jax ok" in out.stdout
