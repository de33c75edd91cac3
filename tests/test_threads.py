"""A guarded generator shared by threads: calls are serialized, every mode, no race needed."""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
import types

import numpy as np
import pytest

import safegen
from safegen._guard import is_guarded

THREADS = 8
CALLS = 12_000


def numbered(total=CALLS):
    """A correct generator: fresh arrays, each batch tagged with its index."""
    for index in range(total):
        x = np.full((4, 2), float(index))
        yield index, x, x.mean(axis=1, keepdims=True)


_SAFEGEN = os.path.dirname(safegen.__file__)


def _inside_next(thread):
    """Whether ``thread`` is inside the guarded generator's ``__next__`` (waiting on its
    lock, while another thread runs the generator)."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "__next__" and _SAFEGEN in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _drain(source, threads=THREADS):
    """Pull from ``source`` in ``threads`` threads, started together by a barrier, each
    keeping every batch it got; returns (batches per thread, errors)."""
    barrier = threading.Barrier(threads)
    kept: list[list] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(mine):
        barrier.wait()
        try:
            for batch in source:
                mine.append(batch)
        except BaseException as error:  # noqa: BLE001  # reported by the test
            errors.append(error)

    workers = [threading.Thread(target=work, args=(kept[i],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return kept, errors


class TestSharedBetweenThreads:
    """8 threads share one guarded generator: no error, each batch once, consistent."""

    @pytest.mark.parametrize("mode", ["check", "copy", "freeze"])
    def test_each_batch_once_and_consistent(self, mode):
        """12,000 next() calls from 8 threads: each index delivered exactly once, and
        every batch a thread still holds has inputs that match its targets."""
        guarded = safegen.guard(numbered(), mode=mode)
        kept, errors = _drain(guarded)
        assert errors == []
        indices = sorted(index for mine in kept for index, _, _ in mine)
        assert indices == list(range(CALLS))
        for mine in kept:
            for index, x, y in mine:
                assert (x == index).all() and (y == index).all()
        assert safegen.stats(guarded).yields == CALLS
        assert safegen.stats(guarded).violations == 0

    def test_bare_generator_is_not_thread_safe(self):
        """The control, without a race: while one thread is inside a bare generator, a
        second caller gets ValueError (what tf_keras reports as "Your generator is NOT
        thread-safe"). Forced with events: the first step waits until the second call
        has failed."""
        inside, release = threading.Event(), threading.Event()

        def waits_inside():
            inside.set()
            release.wait()
            yield 0

        gen = waits_inside()
        first = threading.Thread(target=next, args=(gen,))
        first.start()
        inside.wait()
        try:
            with pytest.raises(ValueError, match="generator already executing"):
                next(gen)
        finally:
            release.set()
            first.join()

    def test_guarded_generator_keeps_pythons_reentry_error(self):
        """The lock is reentrant: a guarded generator calling next() on itself gets
        Python's ValueError, not a deadlock."""

        def reentrant():
            yield next(guarded)

        guarded = safegen.guard(reentrant())
        with pytest.raises(ValueError, match="generator already executing"):
            next(guarded)

    def test_second_thread_waits_for_the_running_step(self):
        """While one thread is inside the generator, another thread's next() waits and
        then gets the following batch (forced with events, not timing)."""
        inside, release = threading.Event(), threading.Event()

        def slow_first():
            inside.set()
            release.wait()
            yield 0
            yield 1

        guarded = safegen.guard(slow_first())
        got: dict[str, int] = {}
        first = threading.Thread(target=lambda: got.__setitem__("first", next(guarded)))
        first.start()
        inside.wait()
        second_started = threading.Event()

        def second_call():
            second_started.set()
            got["second"] = next(guarded)

        second = threading.Thread(target=second_call)
        second.start()
        second_started.wait()
        while second.is_alive() and not _inside_next(second):  # until it waits on the lock
            time.sleep(0.001)
        release.set()
        first.join()
        second.join()
        assert got == {"first": 0, "second": 1}

    def test_send_throw_close_are_serialized_too(self):
        """send(), throw() and close() go through the same lock and keep their meaning."""
        received = []

        def echo():
            try:
                while True:
                    received.append((yield len(received)))
            except KeyError:
                yield "caught"

        guarded = safegen.guard(echo())
        assert next(guarded) == 0
        assert guarded.send("a") == 1
        assert guarded.throw(KeyError("k")) == "caught"
        guarded.close()
        assert received == ["a"]
        assert guarded.gi_frame is None

    def test_reused_buffer_is_reported_whichever_thread_pulls(self):
        """Check mode finds the reused buffer when 8 threads share the generator: the
        second yield reports it, whichever thread asked for it."""

        def reused():
            x = np.zeros(3)
            for i in range(100):
                x[:] = i
                yield x

        guarded = safegen.guard(reused())
        _, errors = _drain(guarded)
        assert len(errors) == 1 and isinstance(errors[0], safegen.AliasingError)
        assert "yield #1 array (float64, shape (3,)) changed after it was yielded" in str(errors[0])

    def test_it_is_still_a_generator(self):
        """The serializing proxy passes isinstance(GeneratorType), pickles as a generator
        would not, and hashes by identity."""
        raw = numbered(2)
        guarded = safegen.guard(raw)
        assert isinstance(guarded, types.GeneratorType)
        assert guarded != raw and hash(guarded) != hash(raw)
        assert is_guarded(guarded) and not is_guarded(raw)
        with pytest.raises(TypeError, match="cannot pickle"):
            pickle.dumps(guarded)
