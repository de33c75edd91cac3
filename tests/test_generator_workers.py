"""Guarded generators copied into forked worker processes, without Keras: a fork
``multiprocessing.Pool`` that calls ``next()`` on its copy of one generator, as tf_keras's
``GeneratorEnqueuer`` does (tests/test_random_generators.py has the real tf_keras fit)."""

from __future__ import annotations

import multiprocessing

import pytest

import safegen
from safegen._handle import handle_of
from tests import tf_keras_random_generators as gens

_SHARED = None


def _share(generator):
    global _SHARED
    _SHARED = generator


def _next(_):
    return next(_SHARED)


def _pool_run(guarded, calls=6):
    """``calls`` next() in 2 forked worker processes, after one in this process (as
    tf_keras peeks a batch); the batches made in the workers."""
    next(guarded)
    context = multiprocessing.get_context("fork")
    with context.Pool(2, initializer=_share, initargs=(guarded,)) as pool:
        return pool.map(_next, range(calls), chunksize=1)


def test_global_state_is_reported():
    """NumPy's global state, copied into both workers: RandomStreamError, raised in the
    worker, reaches the caller with the generator's name and location."""
    guarded = safegen.guard(gens.global_noise)(gens.barrier())
    with pytest.raises(safegen.RandomStreamError, match=r"global_noise\(\) at tests/"):
        _pool_run(guarded)


def test_repeated_batches_are_reported():
    """The workers' copies of a deterministic generator yield the same batches."""
    guarded = safegen.guard(gens.cycled)(gens.barrier())
    with pytest.raises(safegen.RepeatedBatchError, match=r"as yield #\d in worker process"):
        _pool_run(guarded)


@pytest.mark.parametrize("function", ["seeded_per_process", "global_noise"])
def test_no_report(function):
    """A generator seeded per process is not reported; global noise in copy mode is
    reseeded in each worker: every batch has its own draws."""
    mode = "copy" if function == "global_noise" else "check"
    guarded = safegen.guard(getattr(gens, function), mode=mode)(gens.barrier())
    batches = _pool_run(guarded)
    noise = [x.tobytes() for x, _ in batches]
    assert len(set(noise)) == len(noise)


def test_nothing_done_in_the_guarding_process():
    """In the process that guarded it, a generator is stepped without a watcher, and its
    handle has no channel until a fork."""
    guarded = safegen.guard(gens.cycled)()
    next(guarded)
    handle = handle_of(guarded)
    assert handle.watcher is None
    assert handle.channel is None


def test_full_batch_training_is_not_reported():
    """One batch yielded again and again, by every copy: not a repeated batch."""
    guarded = safegen.guard(gens.full_batch)(gens.barrier())
    batches = _pool_run(guarded)
    assert len({x.tobytes() for x, _ in batches}) == 1


@pytest.mark.filterwarnings("ignore::safegen.RandomStreamWarning")
def test_copy_mode_warns_about_a_generator_object():
    """Copy mode reseeds the global states, not a Generator in the generator's frame: it
    warns in the worker, and the session summary lists it under the generator."""
    with safegen.enabled(mode="copy") as session:
        guarded = safegen.guard(gens.local_generator_noise, mode="copy")(gens.barrier())
        _pool_run(guarded)
    row = next(r for r in session.as_dict()["sources"] if "local_generator_noise" in r["name"])
    assert row["random_streams"] == 1
    assert "`rng` (numpy.random.Generator)" in row["findings"][0]["message"]
