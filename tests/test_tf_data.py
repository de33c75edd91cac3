"""tf.data pipelines over guarded generators: from_generator, prefetch, interleave."""

from __future__ import annotations

import numpy as np
import pytest

import safegen

pytestmark = pytest.mark.keras
tf = pytest.importorskip("tensorflow")

BATCH = 16
SIGNATURE = (tf.TensorSpec((BATCH, 2), tf.float32), tf.TensorSpec((BATCH, 1), tf.float32))


def aligned_reused(seed=0, steps=40):
    """The bug where it hurts most: a reused buffer that starts on a 64-byte boundary.

    TensorFlow wraps such an array without copying it, so the tensors waiting in the
    prefetch buffer are views of the buffer the generator keeps rewriting.
    """
    raw = np.empty(BATCH * 2 * 4 + 64, np.uint8)
    offset = -raw.ctypes.data % 64
    x = raw[offset : offset + BATCH * 2 * 4].view(np.float32).reshape(BATCH, 2)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x[:] = rng.integers(0, 100, size=(BATCH, 2))
        yield x, x.mean(axis=1, keepdims=True)


def fresh(seed=0, steps=40):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.integers(0, 100, size=(BATCH, 2)).astype(np.float32)
        yield x, x.mean(axis=1, keepdims=True)


def _mismatched(dataset):
    bad = total = 0
    for x, y in dataset:
        total += 1
        bad += not np.array_equal(x.numpy().mean(axis=1, keepdims=True), y.numpy())
    return bad, total


def _dataset(factory, **guard_options):
    def make():
        gen = factory()
        return safegen.guard(gen, **guard_options) if guard_options else gen

    return tf.data.Dataset.from_generator(make, output_signature=SIGNATURE)


class TestAlignedReusedBuffer:
    """from_generator over a reused, 64-byte-aligned buffer."""

    def test_mismatched_without_safegen(self):
        """Unguarded, the tensors a consumer keeps are views of the one buffer: all 40 show
        the last batch's inputs, so 39 no longer match their targets (no race involved)."""
        bad, total = _mismatched(list(_dataset(aligned_reused).prefetch(8)))
        assert (bad, total) == (39, 40)

    def test_copy_mode_has_no_mismatch(self):
        """Copy mode: 0 mismatched batches."""
        bad, total = _mismatched(_dataset(aligned_reused, mode="copy").prefetch(8))
        assert (bad, total) == (0, 40)


class TestPipelines:
    """Guarded generators in richer pipelines, every mode."""

    @pytest.mark.parametrize("mode", ["check", "copy", "freeze"])
    def test_prefetch_and_parallel_map(self, mode):
        """prefetch and map(num_parallel_calls) over a clean guarded generator work."""
        dataset = (
            _dataset(fresh, mode=mode)
            .map(lambda x, y: (x * 1.0, y), num_parallel_calls=4)
            .prefetch(tf.data.AUTOTUNE)
        )
        assert _mismatched(dataset) == (0, 40)

    @pytest.mark.parametrize("mode", ["check", "copy"])
    def test_interleave_of_guarded_generators(self, mode):
        """interleave over several guarded generators, in parallel."""
        seeds = tf.data.Dataset.range(3)

        def one(seed):
            return tf.data.Dataset.from_generator(
                lambda s: safegen.guard(fresh(int(s), steps=10), mode=mode),
                output_signature=SIGNATURE,
                args=(seed,),
            )

        dataset = seeds.interleave(one, cycle_length=3, num_parallel_calls=3).prefetch(4)
        assert _mismatched(dataset) == (0, 30)

    def test_interleave_copy_mode_fixes_reused_buffers(self):
        """interleave of reused-buffer generators in copy mode: 0 mismatched."""
        dataset = tf.data.Dataset.range(3).interleave(
            lambda s: tf.data.Dataset.from_generator(
                lambda s: safegen.guard(aligned_reused(int(s), steps=10), mode="copy"),
                output_signature=SIGNATURE,
                args=(s,),
            ),
            cycle_length=3,
            num_parallel_calls=3,
        )
        assert _mismatched(dataset.prefetch(8)) == (0, 30)

    def test_check_mode_error_inside_tf_data(self):
        """A violation inside from_generator surfaces with safegen's first line intact."""
        dataset = _dataset(aligned_reused, mode="check").prefetch(2)
        with pytest.raises(Exception) as info:
            _mismatched(dataset)
        text = str(info.value)
        assert "AliasingError: aligned_reused() at " in text
        assert "test_tf_data.py:" in text
        assert "yield #1 leaf [0] (float32, shape (16, 2)) changed after it was yielded" in text
