"""The frozen-augmentation check (safegen.integrations._augmentation): a random map
upstream of cache(), or random ops whose seeded stream restarts each epoch, in the tf.data
pipeline given to fit; each bug with its correct twin silent, with real fit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import safegen
import safegen._guard  # noqa: F401 - imported before pytester snapshots sys.modules
from safegen._detectors.augmentation import (
    CONSTANT,
    ELEMENT,
    SEEDED,
    STATE,
    RandomOp,
    Stage,
    frozen,
)

# Keras 3 warns that fit's default shuffle=True does not apply to a tf.data.Dataset.
pytestmark = pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
IMAGES = np.arange(16 * 4 * 4, dtype=np.float32).reshape(16, 4, 4, 1) / 256.0
LABELS = (np.arange(16) % 2).astype(np.float32).reshape(16, 1)


def _fs():
    """A source: the same element wherever it is given."""
    return Stage("other", "tensor_slice")


class TestDecision:
    """The framework-free decision on a pipeline's description."""

    def _map(self, *ops, inputs=None):
        return Stage("map", "map(augment)", inputs or (_fs(),), "augment", "a.py:3", ops)

    def test_random_map_before_cache(self):
        """Any random op upstream of a cache is reported, whatever feeds its seed."""
        for draws in (STATE, SEEDED, ELEMENT):
            aug = self._map(RandomOp("RandomUniform", draws))
            pipeline = Stage("other", "batch", (Stage("cache", "cache()", (aug,)),))
            reports = frozen(pipeline, restarts=False, source="tf.data input")
            assert [(r.cause, r.function, r.cache) for r in reports] == [
                ("cache", "augment", "cache()")
            ]
            assert "tensor_slice -> map(augment) -> cache() -> batch" in reports[0].message

    def test_generated_data_set_silent(self):
        """A map that draws samples from integer scalars alone generates a data set: cached
        or seeded, it is meant to stay the same, and is not reported."""
        sample = Stage(
            "map", "map(sample)", (_fs(),), "sample", "a.py:3",
            (RandomOp("RandomStandardNormal", SEEDED, (1, 0)),), transforms=False,
        )  # fmt: skip
        assert frozen(Stage("cache", "cache()", (sample,)), restarts=True, source="s") == []

    def test_constant_seed_before_cache_silent(self):
        """A stateless op with a constant seed is a fixed transformation: not reported."""
        aug = self._map(RandomOp("StatelessRandomUniformV2", CONSTANT))
        assert frozen(Stage("cache", "cache()", (aug,)), restarts=True, source="s") == []

    def test_random_map_after_cache_silent(self):
        """A map that draws from a state downstream of the cache is silent."""
        aug = self._map(
            RandomOp("RandomUniform", STATE), inputs=(Stage("cache", "cache()", (_fs(),)),)
        )
        assert frozen(aug, restarts=True, source="s") == []

    def test_seeded_only_when_restarted(self):
        """Fixed seeds are reported only when the call makes a new iterator per epoch."""
        aug = self._map(RandomOp("RandomUniform", SEEDED, (1, 0)))
        assert frozen(aug, restarts=False, source="s") == []
        (report,) = frozen(aug, restarts=True, source="s")
        assert (report.cause, report.seeds) == ("seed", ((1, 0),))
        assert "RandomUniform seed=1 seed2=0" in report.message

    def test_element_seeds_from_dataset_random(self):
        """Element seeds from a Dataset.random() that does not rerandomize are reported;
        from one that does, or from no Dataset.random() at all, they are not."""
        op = RandomOp("StatelessRandomUniformV2", ELEMENT)
        for rerandomize, expected in ((False, ["dataset_random"]), (True, [])):
            random = Stage("random", "Dataset.random()", rerandomize=rerandomize)
            zipped = Stage("other", "zip", (_fs(), random))
            reports = frozen(self._map(op, inputs=(zipped,)), restarts=True, source="s")
            assert [r.cause for r in reports] == expected
        assert frozen(self._map(op), restarts=True, source="s") == []


tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _base():
    return tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))


def augment(x, y):
    """The random map of these tests: a random flip and noise."""
    x = tf.image.random_flip_left_right(x)
    return x + tf.random.uniform(tf.shape(x), maxval=0.1), y


def scale(x, y):
    """A deterministic map."""
    return x * 2.0 - 1.0, y


def _model(module=None):
    module = module or keras
    model = module.Sequential(
        [module.layers.Flatten(input_shape=(4, 4, 1)), module.layers.Dense(1)]
        if module is not keras
        else [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile("sgd", "mse")
    return model


def _fit(dataset, module=None, **kwargs):
    """Fit a small model on ``dataset`` under enable(); returns the session."""
    kwargs.setdefault("epochs", 2)
    with safegen.enabled() as session:
        _model(module).fit(dataset, verbose=0, **kwargs)
    return session


@pytest.fixture
def global_seed():
    """keras.utils.set_random_seed(1) for the test, undone after it."""
    keras.utils.set_random_seed(1)
    yield
    tf.random.set_seed(None)


@pytest.mark.keras
class TestBeforeCache:
    """A random map upstream of cache(), fit by Keras 3."""

    def test_random_map_before_cache_reported(self):
        """map(augment).cache() raises, naming the map function, its line and the fix."""
        line = augment.__code__.co_firstlineno
        with pytest.raises(safegen.AugmentationError) as caught:
            _fit(_base().map(augment).cache().batch(4))
        message = str(caught.value)
        assert message.startswith(f"augment() at test_augmentation.py:{line}, a map in the tf.data")
        assert "RandomUniform) upstream of cache()" in message
        assert "Fix: cache first, then augment (ds.cache().map(augment))" in message
        assert caught.value.report.cause == "cache"

    def test_counted_in_the_session(self):
        """The finding is counted under its kind, listed under the check, and handed to
        on_violation as a safegen.AugmentationReport."""
        reports = []
        with safegen.enabled(on_violation=reports.append) as session:
            _model().fit(_base().map(augment).cache().batch(4), epochs=1, verbose=0)
        assert session.counts()["frozen_augmentations"] == 1
        assert [type(r) for r in reports] == [safegen.AugmentationReport]
        assert reports[0].function == "augment" and reports[0].ops == ("RandomUniform",)
        assert "check tf.data input of model" in session.summary()

    def test_cache_first_silent(self):
        """cache().map(augment): the fix, silent."""
        session = _fit(_base().cache().map(augment).batch(4))
        assert session.counts()["frozen_augmentations"] == 0

    def test_deterministic_map_before_cache_silent(self):
        """map(scale).cache(): nothing random is cached, silent."""
        session = _fit(_base().map(scale, num_parallel_calls=2).cache().batch(4))
        assert session.counts()["frozen_augmentations"] == 0

    def test_file_cache_and_parallel_map(self, tmp_path):
        """A file cache and a parallel map are read the same way."""
        path = str(tmp_path / "cache")
        dataset = _base().map(augment, num_parallel_calls=2).batch(4).cache(path)
        with pytest.raises(safegen.AugmentationError, match=r"upstream of cache\('.*cache'\)"):
            _fit(dataset, epochs=1)

    def test_keras_preprocessing_layer_before_cache(self):
        """A Keras preprocessing layer in a map before cache() is reported too."""
        flip = keras.layers.RandomFlip("horizontal")
        dataset = _base().batch(4).map(lambda x, y: (flip(x), y)).cache()
        with pytest.raises(safegen.AugmentationError, match="StatelessRandomUniformV2"):
            _fit(dataset)

    def test_random_op_in_a_nested_function(self):
        """A random op inside a tf.function or a tf.cond branch that the map calls counts."""

        @tf.function
        def noisy(x):
            return x + tf.random.normal(tf.shape(x))

        def maybe(x, y):
            return tf.cond(tf.reduce_sum(x) > 0, lambda: noisy(x), lambda: x), y

        with pytest.raises(safegen.AugmentationError, match="RandomStandardNormal"):
            _fit(_base().map(maybe).cache().batch(4))

    def test_synthetic_data_set_silent(self, global_seed):
        """Dataset.range(n).map(sample).cache(), under a global seed: a fixed synthetic
        data set, made on purpose, silent."""

        def sample(i):
            x = tf.random.normal((4, 4, 1))
            return x, tf.reduce_mean(x, keepdims=True)[0, 0]

        dataset = tf.data.Dataset.range(16).map(sample).cache().batch(4)
        session = _fit(dataset)
        assert session.counts()["frozen_augmentations"] == 0

    def test_distributed_dataset(self):
        """A tf.distribute DistributedDataset given to fit: its original dataset is read."""
        strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
        with strategy.scope():
            model = _model()
        dataset = strategy.experimental_distribute_dataset(_base().map(augment).cache().batch(4))
        with safegen.enabled():
            with pytest.raises(safegen.AugmentationError, match=r"^augment\(\) at "):
                model.fit(dataset, epochs=2, verbose=0)

    def test_evaluate_and_validation_data_not_checked(self):
        """validation_data and evaluate are not checked: the same validation data in
        every epoch is what makes its scores comparable."""
        validation = _base().map(augment).cache().batch(4)
        with safegen.enabled() as session:
            model = _model()
            model.fit(_base().batch(4), validation_data=validation, epochs=2, verbose=0)
            model.evaluate(validation, verbose=0)
        assert session.counts()["frozen_augmentations"] == 0


# The official TensorFlow segmentation tutorial as it was (tensorflow/docs#1097,
# tensorflow#47755): random flipping inside the load function, mapped before cache().
# Ported with synthetic images and masks, smaller.
def _tutorial(fixed):
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3)).astype(np.uint8)
    masks = np.random.default_rng(1).integers(1, 4, (8, 16, 16, 1)).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices({"image": images, "segmentation_mask": masks})

    def normalize(input_image, input_mask):
        input_image = tf.cast(input_image, tf.float32) / 255.0
        input_mask -= 1
        return input_image, input_mask

    @tf.function
    def load_image_train(datapoint):
        input_image = tf.image.resize(datapoint["image"], (8, 8))
        input_mask = tf.image.resize(datapoint["segmentation_mask"], (8, 8))
        if tf.random.uniform(()) > 0.5:
            input_image = tf.image.flip_left_right(input_image)
            input_mask = tf.image.flip_left_right(input_mask)
        input_image, input_mask = normalize(input_image, input_mask)
        return input_image, input_mask

    # The fix of tensorflow/docs#1097: load and resize, cache, then flip.
    def load_resize(datapoint):
        input_image = tf.image.resize(datapoint["image"], (8, 8))
        input_mask = tf.image.resize(datapoint["segmentation_mask"], (8, 8))
        return normalize(input_image, input_mask)

    def random_flip(input_image, input_mask):
        if tf.random.uniform(()) > 0.5:
            input_image = tf.image.flip_left_right(input_image)
            input_mask = tf.image.flip_left_right(input_mask)
        return input_image, input_mask

    if fixed:
        train = dataset.map(load_resize, num_parallel_calls=tf.data.AUTOTUNE).cache()
        train = train.map(random_flip)
    else:
        train = dataset.map(load_image_train, num_parallel_calls=tf.data.AUTOTUNE)
        train = train.cache()
    return train.shuffle(8).batch(4).repeat().prefetch(tf.data.AUTOTUNE)


def _segmenter():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 3, padding="same")])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.keras
class TestTutorial:
    """The official TensorFlow segmentation tutorial's pipeline (tensorflow/docs#1097)."""

    def test_tutorial_reported(self):
        """load_image_train (a tf.function with a random flip) mapped before cache()."""
        with safegen.enabled():
            with pytest.raises(safegen.AugmentationError, match=r"^load_image_train\(\) at "):
                _segmenter().fit(_tutorial(fixed=False), epochs=2, steps_per_epoch=2, verbose=0)

    def test_tutorial_fixed_silent(self):
        """The fix merged in tensorflow/docs#1097: cache, then flip."""
        with safegen.enabled() as session:
            _segmenter().fit(_tutorial(fixed=True), epochs=2, steps_per_epoch=2, verbose=0)
        assert session.counts()["frozen_augmentations"] == 0


def _keras_io_from_scratch():
    """keras.io "Image classification from scratch" (fchollet, 2023): Keras preprocessing
    layers mapped over the batched training set, then prefetch. Synthetic images."""
    images = np.random.default_rng(2).random((16, 8, 8, 3)).astype(np.float32) * 255
    train_ds = tf.data.Dataset.from_tensor_slices((images, LABELS)).batch(4)
    data_augmentation_layers = [
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.1),
    ]

    def data_augmentation(images):
        for layer in data_augmentation_layers:
            images = layer(images)
        return images

    train_ds = train_ds.map(
        lambda img, label: (data_augmentation(img), label), num_parallel_calls=tf.data.AUTOTUNE
    )
    return train_ds.prefetch(tf.data.AUTOTUNE)


def _tf_tutorial_stateless():
    """The TensorFlow data augmentation tutorial's tf.image option: stateless ops seeded
    from a tf.random.Generator's make_seeds, mapped after shuffle. Synthetic images."""
    images = np.random.default_rng(3).integers(0, 256, (16, 12, 12, 3)).astype(np.uint8)
    train_ds = tf.data.Dataset.from_tensor_slices((images, LABELS))
    rng = tf.random.Generator.from_seed(123, alg="philox")

    def resize_and_rescale(image, label):
        image = tf.cast(image, tf.float32)
        image = tf.image.resize(image, [8, 8])
        return image / 255.0, label

    def augment(image_label, seed):
        image, label = image_label
        image, label = resize_and_rescale(image, label)
        image = tf.image.resize_with_crop_or_pad(image, 14, 14)
        new_seed = tf.random.split(seed, num=1)[0, :]
        image = tf.image.stateless_random_crop(image, size=[8, 8, 3], seed=seed)
        image = tf.image.stateless_random_brightness(image, max_delta=0.5, seed=new_seed)
        return tf.clip_by_value(image, 0, 1), label

    def f(x, y):
        seed = rng.make_seeds(1)[:, 0]
        image, label = augment((x, y), seed)
        return image, label

    return train_ds.shuffle(16).map(f, num_parallel_calls=tf.data.AUTOTUNE).batch(4)


@pytest.mark.keras
class TestPublicPipelines:
    """Augmentation pipelines of the official Keras and TensorFlow examples, which draw
    anew every epoch: silent, with and without a global seed."""

    @pytest.mark.parametrize("seeded", [False, True], ids=["no seed", "global seed"])
    @pytest.mark.parametrize("make", [_keras_io_from_scratch, _tf_tutorial_stateless])
    def test_silent(self, make, seeded):
        """The pipeline, traced with or without keras.utils.set_random_seed, is silent."""
        if seeded:
            keras.utils.set_random_seed(1)
        try:
            dataset = make()
        finally:
            tf.random.set_seed(None)
        shape = dataset.element_spec[0].shape[1:]
        model = keras.Sequential(
            [keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(1)]
        )
        model.compile("sgd", "mse")
        with safegen.enabled() as session:
            model.fit(dataset, epochs=2, verbose=0)
        assert session.counts()["frozen_augmentations"] == 0


@pytest.mark.keras
class TestGlobalSeed:
    """Random ops whose seeded stream restarts with each epoch's iterator."""

    def test_random_map_with_global_seed_reported(self, global_seed):
        """keras.utils.set_random_seed, then map(augment): every epoch repeats the first."""
        with pytest.raises(safegen.AugmentationError) as caught:
            _fit(_base().map(augment).batch(4))
        message = str(caught.value)
        assert "draws from random ops with fixed seeds (RandomUniform seed=1 seed2=" in message
        assert "tf.random.Generator.from_seed(1)" in message
        assert caught.value.report.cause == "seed"

    def test_tf_random_set_seed_reported(self):
        """tf.random.set_seed alone does it too."""
        tf.random.set_seed(7)
        try:
            dataset = _base().map(augment).batch(4)
        finally:
            tf.random.set_seed(None)
        with pytest.raises(safegen.AugmentationError, match="fixed seeds"):
            _fit(dataset)

    def test_no_global_seed_silent(self):
        """The same map without a global seed draws anew each epoch: silent."""
        session = _fit(_base().map(augment).batch(4))
        assert session.counts()["frozen_augmentations"] == 0

    def test_one_epoch_silent_until_fit_again(self, global_seed):
        """One epoch repeats nothing; fitting the same dataset again restarts it."""
        dataset = _base().map(augment).batch(4)
        with safegen.enabled() as session:
            model = _model()
            model.fit(dataset, epochs=1, verbose=0)
            assert session.counts()["frozen_augmentations"] == 0
            with pytest.raises(safegen.AugmentationError, match="fixed seeds"):
                model.fit(dataset, epochs=1, verbose=0)

    def test_one_iterator_across_epochs_silent(self, global_seed):
        """repeat() with steps_per_epoch: one iterator runs on, the draws go on."""
        session = _fit(_base().map(augment).batch(4).repeat(), steps_per_epoch=2)
        assert session.counts()["frozen_augmentations"] == 0

    def test_generator_fix_silent(self, global_seed):
        """The fix: a tf.random.Generator, whose state lives across epochs."""
        generator = tf.random.Generator.from_seed(1)

        def noisy(x, y):
            return x + generator.uniform(tf.shape(x), maxval=0.1), y

        session = _fit(_base().map(noisy).batch(4))
        assert session.counts()["frozen_augmentations"] == 0

    def test_keras_layers_fix_silent(self, global_seed):
        """The fix: Keras preprocessing layers (their SeedGenerator advances)."""
        flip = keras.layers.RandomFlip("horizontal")
        shift = keras.layers.RandomTranslation(0.2, 0.2)
        session = _fit(_base().batch(4).map(lambda x, y: (shift(flip(x)), y)))
        assert session.counts()["frozen_augmentations"] == 0

    def test_dataset_random_fix_silent(self, global_seed):
        """The fix: stateless ops seeded from Dataset.random(rerandomize_each_iteration=True)."""
        seeds = tf.data.Dataset.random(seed=1, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((_base(), seeds)).map(_stateless)
        session = _fit(dataset.batch(4))
        assert session.counts()["frozen_augmentations"] == 0

    def test_dataset_random_without_rerandomize_reported(self):
        """Dataset.random() without rerandomize_each_iteration repeats every epoch."""
        seeds = tf.data.Dataset.random(seed=1).batch(2)
        dataset = tf.data.Dataset.zip((_base(), seeds)).map(_stateless)
        with pytest.raises(safegen.AugmentationError, match="rerandomize_each_iteration=True"):
            _fit(dataset.batch(4))


def _stateless(element, seed):
    x, y = element
    return x + tf.random.stateless_uniform(tf.shape(x), seed=seed, maxval=0.1), y


def _passes(dataset, n=2):
    return [np.concatenate([np.ravel(x.numpy()) for x, _ in dataset]) for _ in range(n)]


def _repeats(dataset):
    first, second = _passes(dataset)
    return bool(np.array_equal(first, second))


@pytest.mark.keras
class TestMeasured:
    """What the check's rules rest on, measured on the TensorFlow installed: two passes
    over one dataset (two iterators, as two epochs of fit)."""

    def test_seeded_map_repeats(self, global_seed):
        """With a global seed, a random map's draws repeat in each pass; cache() or not."""
        assert _repeats(_base().map(augment))
        assert _repeats(_base().cache().map(augment))

    def test_unseeded_map_does_not_repeat(self):
        """Without a global seed they differ; before a cache they repeat."""
        assert not _repeats(_base().map(augment))
        assert _repeats(_base().map(augment).cache())

    def test_states_that_advance(self, global_seed):
        """A tf.random.Generator and Keras layers draw anew each pass, global seed or not;
        Dataset.random() repeats unless rerandomize_each_iteration=True."""
        generator = tf.random.Generator.from_seed(1)
        assert not _repeats(_base().map(lambda x, y: (x + generator.uniform(tf.shape(x)), y)))
        flip = keras.layers.RandomTranslation(0.3, 0.3)
        assert not _repeats(_base().batch(4).map(lambda x, y: (flip(x), y)))
        again = tf.data.Dataset.random(seed=1).batch(2)
        fresh = tf.data.Dataset.random(seed=1, rerandomize_each_iteration=True).batch(2)
        assert _repeats(tf.data.Dataset.zip((_base(), again)).map(_stateless))
        assert not _repeats(tf.data.Dataset.zip((_base(), fresh)).map(_stateless))


@pytest.mark.tf_keras
class TestTfKeras:
    """tf_keras's fit takes tf.data too."""

    @pytest.fixture
    def tf_keras(self):
        return pytest.importorskip("tf_keras")

    def test_before_cache_reported(self, tf_keras):
        """map(augment).cache() given to tf_keras fit raises."""
        with pytest.raises(safegen.AugmentationError, match=r"^augment\(\) at "):
            _fit(_base().map(augment).cache().batch(4), tf_keras)

    def test_global_seed_reported(self, tf_keras):
        """tf_keras.utils.set_random_seed, then a random map: reported."""
        tf_keras.utils.set_random_seed(1)
        try:
            dataset = _base().map(augment).batch(4)
        finally:
            tf.random.set_seed(None)
        with pytest.raises(safegen.AugmentationError, match="fixed seeds"):
            _fit(dataset, tf_keras)

    def test_fixed_silent(self, tf_keras):
        """Cache first, and tf_keras's own preprocessing layer under a global seed: silent."""
        tf_keras.utils.set_random_seed(1)
        try:
            flip = tf_keras.layers.RandomFlip("horizontal")
            dataset = _base().cache().batch(4).map(lambda x, y: (flip(x), y))
        finally:
            tf.random.set_seed(None)
        session = _fit(dataset, tf_keras)
        assert session.counts()["frozen_augmentations"] == 0


BUGGY = """
    import numpy as np
    import keras
    import tensorflow as tf

    def augment(x, y):
        return tf.image.random_flip_left_right(x), y

    images = np.zeros((16, 4, 4, 1), np.float32)
    labels = np.zeros((16, 1), np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = {pipeline}.batch(4)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(dataset, epochs=2, verbose=0)
    print("trained")
"""


def _run(tmp_path, pipeline, backend="tensorflow"):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(BUGGY.format(pipeline=pipeline)))
    return subprocess.run(
        [sys.executable, "-m", "safegen", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "KERAS_BACKEND": backend,
        },
    )


@pytest.mark.keras
@pytest.mark.slow
class TestRun:
    """safegen run: exit 1 on a frozen augmentation, 0 on its fix."""

    def test_buggy_exits_1(self, tmp_path):
        """map(augment).cache(): the run fails with the message."""
        result = _run(tmp_path, "dataset.map(augment).cache()")
        assert result.returncode == 1, result.stderr
        assert "AugmentationError: augment() at train.py:6" in result.stderr

    def test_fixed_exits_0(self, tmp_path):
        """cache().map(augment): the run passes."""
        result = _run(tmp_path, "dataset.cache().map(augment)")
        assert result.returncode == 0, result.stderr
        assert "trained" in result.stdout

    @pytest.mark.parametrize(
        "backend",
        [
            pytest.param("jax", marks=pytest.mark.jax),
            pytest.param("torch", marks=pytest.mark.torch),
        ],
    )
    def test_other_backends(self, tmp_path, backend):
        """Keras 3 on JAX or PyTorch fit on tf.data: the graph is read all the same."""
        pytest.importorskip(backend)
        result = _run(tmp_path, "dataset.map(augment).cache()", backend=backend)
        assert result.returncode == 1, result.stderr
        assert "AugmentationError: augment() at train.py:6" in result.stderr


PLUGIN_TESTS = """
import numpy as np
import keras
import tensorflow as tf


def augment(x, y):
    return tf.image.random_flip_left_right(x), y


def _fit(dataset):
    layers = [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    model = keras.Sequential(layers)
    model.compile("sgd", "mse")
    model.fit(dataset.batch(4), epochs=2, verbose=0)


def _data():
    images = np.zeros((8, 4, 4, 1), np.float32)
    return tf.data.Dataset.from_tensor_slices((images, np.zeros((8, 1), np.float32)))


def test_augment_then_cache():
    _fit(_data().map(augment).cache())


def test_cache_then_augment():
    _fit(_data().cache().map(augment))
"""


@pytest.mark.keras
@pytest.mark.slow
class TestPytestPlugin:
    """pytest --safegen fails the test whose pipeline augments before cache()."""

    def test_fails_the_buggy_test_only(self, pytester):
        """The buggy test fails with AugmentationError, its fixed twin passes."""
        pytester.makepyfile(test_pipelines=PLUGIN_TESTS)
        pytester.makeini(
            "[pytest]\nfilterwarnings =\n    ignore::UserWarning\n    ignore::DeprecationWarning\n"
        )
        pytester.syspathinsert(str(ROOT))
        result = pytester.runpytest(
            "-p", "no:safegen", "-p", "safegen.integrations.pytest_plugin", "--safegen"
        )
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            ["*AugmentationError: augment() at test_pipelines.py:*upstream of cache()*"]
        )
        assert "test_augment_then_cache" in "\n".join(
            line for line in result.outlines if line.startswith("FAILED")
        )


@pytest.mark.keras
class TestReshuffledUpstream:
    """A global seed with a shuffle that reshuffles each epoch upstream of the map: each
    element meets other draws every epoch (keras-io's CutMix example): not reported."""

    def _map(self, *inputs):
        op = RandomOp("RandomUniform", SEEDED, (42, 0))
        return Stage("map", "map(augment)", inputs, "augment", "a.py:3", (op,))

    def test_decision(self):
        """Seeded ops after a reshuffling shuffle are silent; after a shuffle that does not
        reshuffle, or with a cache between the shuffle and the map, they are reported."""
        source = _fs()
        for shuffle, expected in (
            (Stage("shuffle", "shuffle", (source,), rerandomize=True), []),
            (Stage("shuffle", "shuffle", (source,), rerandomize=False), ["seed"]),
            (
                Stage(
                    "cache", "cache()", (Stage("shuffle", "shuffle", (source,), rerandomize=True),)
                ),
                ["seed"],
            ),
        ):
            reports = frozen(self._map(shuffle), restarts=True, source="s")
            assert [r.cause for r in reports] == expected

    def test_draws_move_between_elements(self, global_seed):
        """Measured: shuffle().map(noise) with a global seed gives row 0 other noise in
        the second epoch; map(noise).shuffle() gives it the same."""

        def noise(x, y):
            return x + tf.random.uniform(tf.shape(x), maxval=0.1), y

        def row_noise(dataset):
            out = {}
            for x, y in dataset:
                for image, label in zip(x.numpy(), y.numpy(), strict=True):
                    out.setdefault(float(label[0]), []).append(image.ravel() - IMAGES[0].ravel())
            return out

        labels = np.arange(16, dtype=np.float32).reshape(16, 1)
        base = tf.data.Dataset.from_tensor_slices((np.repeat(IMAGES[:1], 16, axis=0), labels))
        after = base.shuffle(16).map(noise).batch(4)
        before = base.map(noise).shuffle(16).batch(4)
        first, second = row_noise(after), row_noise(after)
        assert not np.array_equal(first[0.0][0], second[0.0][0])
        first, second = row_noise(before), row_noise(before)
        assert np.array_equal(first[0.0][0], second[0.0][0])

    def test_fit_after_reshuffling_shuffle_silent(self, global_seed):
        """fit on shuffle().map(augment) with a global seed, 2 epochs: no finding."""
        session = _fit(_base().shuffle(16).map(augment).batch(4))
        assert session.counts()["frozen_augmentations"] == 0

    def test_fit_shuffle_after_map_reported(self, global_seed):
        """map(augment).shuffle(): the draws stay with their elements: reported."""
        with pytest.raises(safegen.AugmentationError, match="fixed seeds"):
            _fit(_base().map(augment).shuffle(16).batch(4))
