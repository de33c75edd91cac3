"""Check mode hashing large arrays on safegen's hashing thread, off the consumer's path."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

import safegen
from safegen import _hasher
from safegen._handle import handle_of
from safegen._modes import _check_background, check

# 20 MB of float64, above the size from which check mode hashes in the background.
SHAPE = (20, 250, 250, 2)
assert np.prod(SHAPE) * 8 > check.BACKGROUND_ABOVE


def _hashing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "safegen-hasher"]


def _state(gen):
    """Check mode's state of the guarded generator ``gen``, through its handle."""
    return handle_of(gen).mode


def reused(shape=SHAPE, write=lambda x, i: x.fill(i)):
    """A generator that refills one buffer in place and yields it every time."""
    x = np.empty(shape)
    i = 0
    while True:
        write(x, i)
        i += 1
        yield x


def fresh(n, shape=SHAPE):
    """A clean generator: a new random array each time."""
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.random(shape)


class _Blocker:
    """Keeps the hashing thread busy until released, so a job stays queued meanwhile."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def __enter__(self):
        def wait(_item):
            self.started.set()
            assert self.release.wait(60)
            return 0

        self.job = _hasher.Job(wait, [None])
        _hasher.submit(self.job)
        assert self.started.wait(60)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.job.wait()


class TestBackgroundHashing:
    """Large arrays are hashed off the critical path and still checked exactly."""

    def test_reused_buffer_caught_at_second_next(self):
        """A reused 20 MB buffer is caught at the 2nd next(), its hash run in the background."""
        it = safegen.guard(reused())
        next(it)
        assert _state(it).inflight is not None  # the hash was handed over
        assert _hashing_threads()
        expected = r"yield #1 array \(float64, shape \(20, 250, 250, 2\)\) changed"
        with pytest.raises(safegen.AliasingError, match=expected):
            next(it)

    def test_one_element_rewritten_is_caught(self):
        """A generator that rewrites a single element of a 20 MB buffer is caught too."""

        def write_last(x, i):
            if i == 0:
                x.fill(0.5)
            x.flat[-1] = i

        it = safegen.guard(reused(write=write_last))
        next(it)
        with pytest.raises(safegen.AliasingError, match=r"yield #1"):
            next(it)

    def test_caught_while_the_thread_is_busy(self):
        """If the thread has not started on a hash, the next next() runs it and still catches."""
        it = safegen.guard(reused())
        with _Blocker():
            next(it)
            job = _state(it).inflight
            with pytest.raises(safegen.AliasingError, match=r"yield #1"):
                next(it)
            assert job.digests  # hashed by the consumer's thread, the hasher being busy

    def test_clean_generator_passes(self):
        """A clean generator of 20 MB arrays passes, with every array re-checked at the end."""
        it = safegen.guard(fresh(16), verify_all=True)
        assert sum(1 for _ in it) == 16
        stats = safegen.stats(it)
        assert stats.violations == 0
        assert stats.bytes_fingerprinted >= 16 * np.prod(SHAPE) * 8

    def test_plain_iterator_and_async_generator(self):
        """Iterators and async generators wait for the hash before they resume too."""

        class Reused:
            def __init__(self):
                self.x = np.zeros(SHAPE)

            def __iter__(self):
                return self

            def __next__(self):
                self.x += 1
                return self.x

        it = safegen.guard(Reused())
        next(it)
        with pytest.raises(safegen.AliasingError, match=r"yield #1"):
            next(it)

        async def batches():
            x = np.zeros(SHAPE)
            while True:
                x += 1
                yield x

        async def main():
            agen = safegen.guard(batches)()
            await agen.__anext__()
            await agen.__anext__()

        with pytest.raises(safegen.AliasingError, match=r"yield #1"):
            asyncio.run(main())

    def test_change_at_exhaustion_is_found(self):
        """A write into the last yield's 20 MB array before the generator returns is found."""

        def last_changes():
            x = np.zeros(SHAPE)
            yield x
            x[0, 0, 0, 0] = 1

        it = safegen.guard(last_changes)()
        next(it)
        with pytest.warns(safegen.AliasingWarning, match="yield #1"):
            with pytest.raises(StopIteration):
                next(it)


class TestIdleConsumer:
    """A consumer that keeps coming back before the thread starts gets the hash made in place."""

    def test_falls_back_to_hashing_in_place(self):
        """When the thread keeps failing to take the hashes, large arrays are hashed in place."""
        it = safegen.guard(fresh(8))
        state = _state(it)
        with _Blocker():  # the thread never gets to the hashes: every resume finds them undone
            for _ in range(check.WAITS_BEFORE_IN_PLACE + 1):
                next(it)
        assert state.inflight is None  # the last one was hashed in place
        assert 0 < state.in_place < check.IN_PLACE_AFTER_WAITS
        assert sum(1 for _ in it) == 8 - check.WAITS_BEFORE_IN_PLACE - 1
        assert safegen.stats(it).violations == 0

    def test_busy_consumer_keeps_the_thread(self):
        """A consumer that finds every hash taken when it comes back keeps them off its path."""
        it = safegen.guard(fresh(6))
        state = _state(it)
        # However loaded the machine, the thread gets each hash: the hand-over waits for
        # it (by default only 0.5 ms, and three hand-overs missed in a row switch to
        # hashing in place, which is what this test must not depend on).
        state.handoff = 60.0
        for _ in range(6):
            next(it)
            state.inflight.wait()  # as if the consumer had worked until the hash was done
        assert state.in_place == 0


class TestConsumerWrites:
    """A consumer that writes into the batch it got, in place, while its hash may run."""

    @pytest.mark.parametrize("order", ["before the hash", "after the hash", "racing it"])
    def test_reported_as_unattributed_whatever_the_order(self, order):
        """The write is warned about (not raised, not pinned on the generator) in every order.

        The blocks sampled at yield time are the reference: a digest taken after the
        consumer's write does not hide it.
        """
        reports = []
        it = safegen.guard(fresh(20), on_violation=reports.append)
        if order == "before the hash":
            with _Blocker():  # the hash waits in the queue until the write is done
                batch = next(it)
                batch *= 2
        elif order == "after the hash":
            batch = next(it)
            _state(it).inflight.wait()
            batch *= 2
        else:
            batch = next(it)
            batch *= 2
        for _ in it:
            pass
        assert [(r.changed_yield, r.attributed) for r in reports] == [(1, False)]

    def test_generator_not_blamed_for_the_consumers_write(self):
        """A consumer write made before the generator resumes is not pinned on the generator
        when the generator yields the same (unchanged) array again."""
        x = np.random.default_rng(0).random(SHAPE)

        def same_array():
            while True:
                yield x

        reports = []
        it = safegen.guard(same_array(), on_violation=reports.append)
        with _Blocker():
            batch = next(it)
            batch += 1  # lands before the hash: the digest includes it
        next(it)
        assert not [r for r in reports if r.attributed]


class TestThreadLifecycle:
    """One hashing thread per process, errors raised in the caller, fork safety."""

    def test_threads_do_not_leak(self):
        """Hundreds of generators (finished, closed, dropped mid-way) leave one thread."""
        before = threading.active_count()
        for i in range(300):
            it = safegen.guard(fresh(3, shape=(2, check.BACKGROUND_ABOVE // 16)))
            next(it)
            if i % 3 == 0:
                it.close()
            elif i % 3 == 1:
                list(it)
            del it
        gc.collect()
        assert len(_hashing_threads()) <= 1
        assert threading.active_count() <= before + 1

    def test_thread_ends_when_idle_and_comes_back(self, monkeypatch):
        """The hashing thread ends after a while without work; the next hash starts one."""
        monkeypatch.setattr(_hasher, "IDLE_SECONDS", 0.05)
        list(safegen.guard(fresh(2)))
        deadline = time.monotonic() + 60
        while _hashing_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _hashing_threads()
        it = safegen.guard(reused())
        next(it)
        assert _hashing_threads()
        with pytest.raises(safegen.AliasingError, match=r"yield #1"):
            next(it)

    def test_error_in_the_hashing_thread_reaches_the_caller(self, monkeypatch):
        """An exception raised while hashing is raised by the next next(), with a note."""

        def fail(array):
            raise MemoryError("no memory for the hash")

        monkeypatch.setattr(_check_background, "digest", fail)
        it = safegen.guard(fresh(3))
        next(it)
        with pytest.raises(MemoryError, match="no memory for the hash") as info:
            next(it)
        assert "on safegen's hashing thread failed" in "".join(info.value.__notes__)

    def test_hashing_error_note_names_the_array(self, monkeypatch):
        """The note names the yielded array as "the array", and leaves by their paths."""

        def fail(array):
            raise MemoryError("no memory for the hash")

        monkeypatch.setattr(_check_background, "digest", fail)
        bare = safegen.guard(fresh(3))
        next(bare)
        with pytest.raises(MemoryError) as info:
            next(bare)
        assert " (the array) on safegen's hashing thread failed" in info.value.__notes__[-1]
        pairs = safegen.guard((x, x.copy()) for x in fresh(3))
        next(pairs)
        with pytest.raises(MemoryError) as info:
            next(pairs)
        assert " (leaves [0], [1]) on safegen's hashing thread" in info.value.__notes__[-1]

    def test_job_error_is_raised_in_the_waiting_thread(self):
        """Job.wait() raises what the digest function raised on the hashing thread."""
        job = _hasher.Job(memoryview, [object()])
        _hasher.submit(job)
        with pytest.raises(TypeError, match="memoryview"):
            job.wait()

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    @pytest.mark.parametrize("in_flight", [True, False])
    def test_fork(self, in_flight):
        """A child forked with a hash in flight (or with the thread alive) still checks.

        The child has no hashing thread: a job in flight at the fork is hashed by the
        child itself, and new jobs start a thread of the child's own.
        """
        it = safegen.guard(reused())
        with _Blocker() if in_flight else _NoBlocker():
            next(it)
            pid = os.fork()
            if pid == 0:  # the child: exit 0 only if all went as expected
                code = 1
                try:
                    try:
                        next(it)
                    except safegen.AliasingError:
                        clean = safegen.guard(fresh(3))
                        code = 0 if len(list(clean)) == 3 and _hashing_threads() else 2
                finally:
                    os._exit(code)
        deadline = time.monotonic() + 120
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
        with pytest.raises(safegen.AliasingError):
            next(it)


class _NoBlocker:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.mark.keras
class TestTfData:
    """Background hashing inside tf.data.Dataset.from_generator (TensorFlow's own threads)."""

    @staticmethod
    def _dataset(make, shape=(8, 250, 250, 5)):
        tf = pytest.importorskip("tensorflow")
        signature = tf.TensorSpec(shape, tf.float64)
        return tf, tf.data.Dataset.from_generator(make, output_signature=signature).prefetch(2)

    def test_reused_buffer_caught_inside_tf_data(self):
        """A reused 20 MB buffer read through from_generator(...).prefetch(2) is caught."""

        def make():
            return safegen.guard(reused(shape=(8, 250, 250, 5)))

        tf, dataset = self._dataset(make)
        with pytest.raises(Exception) as info:  # TensorFlow wraps the AliasingError
            for batch in dataset:
                tf.reduce_sum(batch)
        assert "AliasingError: reused() at " in str(info.value)
        assert "yield #1 array (float64, shape (8, 250, 250, 5)) changed" in str(info.value)

    def test_clean_generator_passes_with_a_tf_function_consumer(self):
        """Fresh 20 MB arrays go through from_generator and a tf.function with no report."""
        reports = []

        def make():
            return safegen.guard(fresh(12, shape=(8, 250, 250, 5)), on_violation=reports.append)

        tf, dataset = self._dataset(make)
        total = tf.function(lambda batch: tf.reduce_sum(batch))
        assert sum(1 for batch in dataset if total(batch) is not None) == 12
        assert reports == []
