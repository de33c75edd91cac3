"""safegen.guard on generators, iterators and functions, without any framework."""

from __future__ import annotations

import asyncio
import collections
import inspect
import sys
import traceback
import types
import warnings

import numpy as np
import pytest

import safegen
from tests import seed


def _pairs(it, n):
    return [next(it) for _ in range(n)]


def sneaky(size=3):
    """A generator that, while producing yield #2, writes into the array of yield #1
    through a reference it kept, and never yields that memory again."""
    kept = []
    while True:
        x = np.zeros(size)
        kept.append(x)
        if len(kept) == 2:
            kept[0][:] = 7
        yield x


class TestSeedGenerators:
    """The seed article's generators, in each mode."""

    @pytest.mark.parametrize("factory", [seed.reused_buffer, seed.reused_buffer_keras])
    def test_check_reports_reused_buffer_by_second_next(self, factory):
        """Check mode raises AliasingError on the 2nd next() of the reused-buffer generator."""
        it = safegen.guard(factory)()
        next(it)
        with pytest.raises(safegen.AliasingError, match=r"yield #1 leaf \[0\]") as info:
            next(it)
        report = info.value.report
        assert (report.changed_yield, report.detected_at) == (1, 2)
        assert report.dtype == "float64"
        assert report.source == f"{factory.__qualname__}()"
        assert report.location.endswith(f"seed.py:{factory.__code__.co_firstlineno}")

    def test_message_names_everything(self):
        """The message says where, which leaf, dtype, shape, which yields, and the fix."""
        it = safegen.guard(seed.reused_buffer_keras)(batch_size=64)
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        first_line = str(info.value).splitlines()[0]
        assert first_line.startswith("reused_buffer_keras() at ")
        assert "seed.py:" in first_line
        assert "yield #1 leaf [0][0] (float64, shape (64, 2)) changed after it was yielded" in (
            first_line
        )
        assert "while yield #2 was being produced" in first_line
        assert 'safegen.guard(mode="copy")' in first_line
        assert "Allocate the array inside the loop" in first_line

    def test_copy_mode_print_next_next_is_consistent(self, capsys):
        """Copy mode: print(next(it), next(it)) shows each batch agreeing with its mean."""
        it = safegen.guard(seed.reused_buffer, mode="copy")()
        first, second = next(it), next(it)
        print(first, second)
        assert seed.consistent(first) and seed.consistent(second)
        assert "array" in capsys.readouterr().out

    def test_without_safegen_print_next_next_is_inconsistent(self):
        """The bug is real: unguarded, the first batch no longer matches its mean."""
        it = seed.reused_buffer()
        first, second = next(it), next(it)
        assert first[0] is second[0]
        assert not seed.consistent(first)

    def test_freeze_fails_at_the_generators_write(self):
        """Freeze mode: the failing frame is the generator's own write, with a note."""
        it = safegen.guard(seed.reused_buffer, mode="freeze")()
        next(it)
        with pytest.raises(ValueError, match="read-only") as info:
            next(it)
        last = traceback.extract_tb(info.value.__traceback__)[-1]
        assert last.name == "reused_buffer"
        assert last.line == "x[i][0] = rng.integers(0, 100)"
        note = "\n".join(info.value.__notes__)
        assert note.startswith("safegen: reused_buffer() at ")
        write = f"tests/seed.py:{last.lineno}"
        assert f"wrote into 'x' (float64, shape (1, 2)) at {write}, which is leaf [0] of" in note
        assert "Allocate the array inside the loop" in note

    @pytest.mark.parametrize("factory", [seed.fresh_buffer, seed.copied_buffer])
    def test_fixed_generators_pass_in_every_mode(self, factory, any_mode):
        """The seed's two fixed generators raise nothing, over hundreds of steps."""
        it = safegen.guard(factory, mode=any_mode)(batch_size=4)
        batches = _pairs(it, 300)
        assert all(seed.consistent(b) for b in batches)
        assert safegen.stats(it).violations == 0


class TestNoFalsePositives:
    """Correct generators are never reported, over hundreds of steps."""

    def test_sliding_windows_over_a_dataset(self, any_mode):
        """Overlapping windows over one array that nothing writes are fine."""
        data = np.arange(2000.0).reshape(1000, 2)

        def windows():
            for start in range(0, 900, 3):
                yield data[start : start + 64], data[start : start + 64, 0]

        batches = list(safegen.guard(windows, mode=any_mode)())
        assert len(batches) == 300
        assert np.array_equal(batches[-1][0], data[897:961])

    def test_constant_array_yielded_again(self):
        """The same unchanged array yielded again and again is not a violation."""
        constant = np.ones((8, 8))

        def repeat():
            for _ in range(500):
                yield constant, {"label": constant[0]}

        it = safegen.guard(repeat, verify_all=True)()
        assert len(list(it)) == 500
        assert safegen.stats(it).violations == 0

    def test_fresh_arrays_with_odd_layouts(self):
        """Fresh arrays of every layout pass check mode with verify_all."""
        rng = np.random.default_rng(1)

        def odd():
            for _ in range(200):
                base = rng.random((6, 5))
                yield (
                    base.T,
                    base[::2, ::-1],
                    np.broadcast_to(rng.random(5), (4, 5)),
                    np.array(3.0),
                    np.asfortranarray(base),
                )

        it = safegen.guard(odd, verify_all=True)()
        assert len(list(it)) == 200


class TestCheckMode:
    """What check mode finds, and when."""

    def test_double_buffering_is_found_by_third_next(self):
        """Two buffers used in turn: yield #1 is found changed by the 3rd next()."""

        def double():
            buffers = [np.zeros(4), np.zeros(4)]
            i = 0
            while True:
                buffers[i % 2][:] = i
                yield buffers[i % 2]
                i += 1

        it = safegen.guard(double)()
        next(it), next(it)
        with pytest.raises(safegen.AliasingError, match="yield #1 array"):
            next(it)

    def test_write_through_a_view_is_found(self):
        """A write into the buffer behind a yielded view is found (same memory)."""

        def views():
            buffer = np.zeros(10)
            while True:
                buffer += 1
                yield buffer[:5]

        it = safegen.guard(views)()
        next(it)
        with pytest.raises(safegen.AliasingError):
            next(it)

    def test_mutation_not_yielded_again_is_found_on_eviction(self):
        """A yielded array changed later, never re-yielded, is found when it leaves the window."""
        reports = []
        it = safegen.guard(sneaky, window=4, on_violation=reports.append)()
        for _ in range(5):
            next(it)
        assert [(r.changed_yield, r.detected_at, r.attributed) for r in reports] == [(1, 5, False)]
        assert "cannot tell who wrote into it" in reports[0].message

    def test_in_place_shuffle_says_where_it_was_found(self):
        """An in-place shuffle of the array batches are cut from is reported as found at
        the yield cut from the same array, not "before" that yield."""

        def shuffled(x, batch_size=4):
            while True:
                x[:] = x[np.random.default_rng(0).permutation(len(x))]
                for i in range(0, len(x), batch_size):
                    yield x[i : i + batch_size]

        it = safegen.guard(shuffled)(np.random.default_rng(1).random((64, 2)))
        held = [next(it) for _ in range(16)]
        with pytest.raises(safegen.AliasingError) as info:
            held.append(next(it))
        message = str(info.value)
        assert "changed after it was yielded, found when yield #17 was produced, which is " in (
            message
        )
        assert "cut from the same array: the generator writes" in message
        assert "before yield #17" not in message

    def test_unattributed_change_advises_the_consumer_and_the_generator(self):
        """The advice covers the most common writer, the consumer's own in-place edit, as
        well as a generator that edits what it yielded."""
        reports = []
        it = safegen.guard(sneaky, window=4, on_violation=reports.append)()
        for _ in range(5):
            next(it)
        message = reports[0].message
        assert "If your code changes the batches it receives in place (batch /= 255" in message
        assert "compute a new array instead (batch = batch / 255) or copy the batch" in message
        assert "If the generator edits what it already yielded: allocate the array" in message
        assert 'or use @safegen.guard(mode="copy").' in message

    def test_unattributed_change_warns_instead_of_raising(self):
        """With on_violation="raise", a change not pinned on the generator is a warning."""
        it = safegen.guard(sneaky, window=2)()
        next(it), next(it)
        with pytest.warns(safegen.AliasingWarning, match="yield #1 array .* cannot tell"):
            next(it)
        found = safegen.stats(it)
        assert (found.violations, found.unattributed) == (1, 1)

    def test_verify_all_finds_it_at_once(self):
        """With verify_all=True the same change is found on the very next step."""
        it = safegen.guard(sneaky, window=4, verify_all=True)()
        next(it)
        with pytest.warns(safegen.AliasingWarning, match="yield #1 array"):
            next(it)

    def test_change_at_exhaustion_is_found(self):
        """A change made after the last yield is found when the generator finishes."""

        def last_write():
            x = np.zeros(3)
            yield x
            x[0] = 1

        it = safegen.guard(last_write)()
        next(it)
        with pytest.warns(safegen.AliasingWarning, match="yield #1"):
            with pytest.raises(StopIteration):
                next(it)

    def test_large_arrays_are_sampled_on_eviction(self):
        """Above 128 KiB the eviction re-check samples blocks and still sees a full rewrite."""
        it = safegen.guard(sneaky, window=2)(size=300_000)
        next(it), next(it)
        with pytest.warns(safegen.AliasingWarning):
            next(it)

    @pytest.mark.parametrize(
        "view",
        [
            lambda x: np.lib.stride_tricks.as_strided(x, (8, 4), x.strides),
            lambda x: np.lib.stride_tricks.sliding_window_view(x, 2, axis=0),
            lambda x: np.from_dlpack(x),
            lambda x: np.asarray(type("W", (), {"__array_interface__": x.__array_interface__})()),
            lambda x: np.frombuffer(memoryview(x), np.float64),
        ],
        ids=["as_strided", "sliding_window_view", "dlpack", "array_interface", "memoryview"],
    )
    def test_reused_buffer_behind_any_kind_of_view(self, view):
        """A refilled buffer is found by the 2nd next() whatever object the view comes from."""

        def refill():
            x = np.zeros((8, 4))
            while True:
                x[...] += 1
                yield view(x)

        it = safegen.guard(refill)()
        next(it)
        with pytest.raises(safegen.AliasingError, match="while yield #2 was being produced"):
            next(it)

    def test_string_dtype_content_changes_are_found(self):
        """StringDType arrays are fingerprinted by their strings, not the arena pointers."""

        def strings():
            x = np.array(["a" * 40, "b" * 40], dtype=np.dtypes.StringDType())
            i = 0
            while True:
                i += 1
                x[0] = str(i % 10) * 40  # same length, new content
                yield x

        it = safegen.guard(strings)()
        next(it)
        with pytest.raises(safegen.AliasingError, match="StringDType"):
            next(it)

    def test_stats_count_bytes(self):
        """stats() counts yields, arrays and fingerprinted bytes."""
        it = safegen.guard(seed.fresh_buffer)(batch_size=8)
        _pairs(it, 10)
        found = safegen.stats(it)
        assert (found.yields, found.arrays, found.violations) == (10, 20, 0)
        assert found.bytes_fingerprinted >= 10 * (8 * 2 * 8 + 8 * 8)
        assert found.seconds > 0 and found.seconds_per_yield > 0

    def test_object_arrays_checked_by_identity(self):
        """Replacing an element of a yielded object array is a change."""

        def objects():
            cell = np.empty(2, dtype=object)
            while True:
                cell[0] = object()
                yield cell

        it = safegen.guard(objects)()
        next(it)
        with pytest.raises(safegen.AliasingError, match="object"):
            next(it)

    def test_datetime_and_structured_dtypes(self):
        """dtypes NumPy cannot export as buffers are fingerprinted too."""

        def dates():
            stamps = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]")
            records = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])
            while True:
                stamps += np.timedelta64(1, "D")
                records["a"] += 1
                yield stamps, records

        it = safegen.guard(dates)()
        next(it)
        with pytest.raises(safegen.AliasingError, match="datetime64"):
            next(it)

    def test_memmap_leaf(self, tmp_path):
        """A memmap written in place after it was yielded is found."""
        mapped = np.memmap(tmp_path / "data.bin", dtype="float32", mode="w+", shape=(16,))

        def from_disk():
            while True:
                mapped[:] += 1
                yield mapped

        it = safegen.guard(from_disk)()
        next(it)
        with pytest.raises(safegen.AliasingError):
            next(it)


class TestViolationHandling:
    """on_violation: raise, warn, or a callable."""

    def test_warn_points_at_the_callers_line(self):
        """The warning is an AliasingWarning whose file and line are the caller's next()."""
        it = safegen.guard(seed.reused_buffer, on_violation="warn")()
        next(it)
        with pytest.warns(safegen.AliasingWarning, match="yield #1 leaf") as caught:
            line = sys._getframe().f_lineno + 1
            next(it)
        assert caught[0].filename == __file__
        assert caught[0].lineno == line
        assert issubclass(safegen.AliasingWarning, UserWarning)

    def test_warn_keeps_the_generator_running(self):
        """After a warning the generator goes on; each changed yield is counted, and one
        warning per kind of change is shown (issue 19: 52 identical warnings were)."""
        it = safegen.guard(seed.reused_buffer, on_violation="warn")()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _pairs(it, 5)
        assert len(caught) == 1
        assert "safegen warns once per kind of change" in str(caught[0].message)
        assert safegen.stats(it).violations == 4
        assert safegen.stats(it).unwarned == 3

    def test_callable_gets_reports(self):
        """A callable on_violation receives AliasingReport objects."""
        reports = []
        it = safegen.guard(seed.reused_buffer, on_violation=reports.append)()
        _pairs(it, 3)
        assert [r.changed_yield for r in reports] == [1, 2]
        assert isinstance(reports[0], safegen.AliasingReport)
        assert reports[0].path == "[0]" and reports[0].shape == (1, 2)
        assert str(reports[0]) == reports[0].message

    def test_raise_finishes_the_generator(self):
        """After raising, the guarded generator is finished, as any generator that raised."""
        it = safegen.guard(seed.reused_buffer)()
        next(it)
        with pytest.raises(safegen.AliasingError):
            next(it)
        with pytest.raises(StopIteration):
            next(it)

    def test_error_rebuilt_from_message_and_pickled(self):
        """AliasingError survives type(e)(message) (Keras) and pickling with its report."""
        import pickle

        it = safegen.guard(seed.reused_buffer)()
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        rebuilt = type(info.value)("context: " + str(info.value))
        assert isinstance(rebuilt, safegen.AliasingError) and rebuilt.report is None
        clone = pickle.loads(pickle.dumps(info.value))
        assert clone.report == info.value.report and str(clone) == str(info.value)
        assert isinstance(info.value, RuntimeError)


class TestCopyMode:
    """Copy mode hands out independent, aligned copies."""

    def test_copies_share_no_memory(self):
        """Each array of a batch is a new array, sharing memory with nothing."""
        x = np.arange(6.0).reshape(3, 2)

        def same():
            while True:
                yield {"x": x, "both": (x, x[:, 0])}

        a, b = _pairs(safegen.guard(same, mode="copy")(), 2)
        leaves = [a["x"], a["both"][0], a["both"][1], b["x"]]
        for i, left in enumerate(leaves):
            assert not np.shares_memory(left, x)
            for right in leaves[i + 1 :]:
                assert not np.shares_memory(left, right)
        assert np.array_equal(a["both"][1], x[:, 0])

    def test_large_copies_are_64_byte_aligned(self):
        """Copies from 256 KiB on start at a 64-byte boundary, in C or Fortran order."""
        big = np.random.default_rng(0).random((800, 100))
        it = safegen.guard(iter([(big, np.asfortranarray(big), big[::2])]), mode="copy")
        for array in next(it):
            assert array.ctypes.data % 64 == 0
        assert np.asfortranarray(big).flags.f_contiguous

    def test_buffers_are_recycled_only_when_free(self):
        """Large copies reuse a buffer only once no array made from the earlier copy lives."""
        big = np.random.default_rng(0).random((600, 100))

        def repeat():
            while True:
                yield big

        it = safegen.guard(repeat, mode="copy")()
        held = [next(it) for _ in range(20)]
        for i, left in enumerate(held):
            assert np.array_equal(left, big)
            assert not any(np.shares_memory(left, right) for right in held[i + 1 :])
        keepers = [held[0][::2], memoryview(held[1]), np.frombuffer(held[2], np.uint8)]
        addresses = {a.ctypes.data for a in held[3:]}
        del held, left
        again = [next(it) for _ in range(17)]
        for array in again:
            array += 1  # writing into a recycled buffer must not reach a kept view
        assert np.array_equal(keepers[0], big[::2])
        assert np.array_equal(np.asarray(keepers[1]), big)
        assert np.array_equal(keepers[2], big.view(np.uint8).ravel())
        assert addresses & {a.ctypes.data for a in again}  # the free buffers were reused

    def test_subclasses_keep_what_they_carry(self, tmp_path):
        """Masked arrays keep their mask; memmaps become plain arrays."""
        masked = np.ma.masked_array([1.0, 2.0], mask=[False, True])
        mapped = np.memmap(tmp_path / "m.bin", dtype="float64", mode="w+", shape=(3,))
        out_masked, out_mapped = next(safegen.guard(iter([(masked, mapped)]), mode="copy"))
        assert isinstance(out_masked, np.ma.MaskedArray)
        assert out_masked.mask.tolist() == [False, True]
        assert type(out_mapped) is np.ndarray

    @pytest.mark.parametrize("container", [tuple, list])
    @pytest.mark.parametrize("size", [1, 2, 3])
    def test_flat_batches_keep_their_container_and_layout(self, container, size):
        """A flat tuple or list of small plain arrays (copied on the fast path, pairs
        without a loop) comes back as a new container of its type, each array a copy
        in its own memory layout, counted in stats(); with a large array among them,
        every array still comes back copied, the large one aligned."""
        small = [np.asfortranarray(np.arange(6.0).reshape(2, 3) + i) for i in range(size)]
        big = np.zeros((600, 100))
        for batch in (container(small), container([*small[:-1], big])):
            guarded = safegen.guard(iter([batch]), mode="copy")
            out = next(guarded)
            assert type(out) is container and out is not batch and len(out) == size
            for copy, array in zip(out, batch, strict=True):
                assert type(copy) is np.ndarray and np.array_equal(copy, array)
                assert not np.shares_memory(copy, array)
                assert copy.flags.f_contiguous == array.flags.f_contiguous
            if batch[-1] is big:
                assert out[-1].ctypes.data % 64 == 0
            stats = safegen.stats(guarded)
            assert (stats.yields, stats.arrays) == (1, size)
            assert stats.bytes_copied == sum(array.nbytes for array in batch)

    def test_stats_count_copied_bytes(self):
        """stats() counts the bytes copied."""
        it = safegen.guard(seed.reused_buffer, mode="copy")(batch_size=4)
        _pairs(it, 3)
        assert safegen.stats(it).bytes_copied == 3 * (4 * 2 * 8 + 4 * 8)


class TestFreezeMode:
    """Freeze mode makes yielded arrays read-only."""

    def test_yielded_arrays_are_read_only(self):
        """Leaves become read-only, and so does a base that covers the same memory."""
        base = np.zeros(10)
        whole = np.zeros((2, 3))

        def views():
            yield base[:5], [base[5:]], whole.reshape(6)

        first, (second,), third = next(safegen.guard(views, mode="freeze")())
        assert not first.flags.writeable and not second.flags.writeable
        assert not third.flags.writeable and not whole.flags.writeable
        assert base.flags.writeable  # larger than any leaf: a generator may fill the rest

    def test_filling_slots_of_a_preallocated_array_is_allowed(self):
        """A correct generator yielding out[k] slot by slot is not stopped (no false positive)."""

        def slots():
            out = np.empty((4, 3))
            for k in range(4):
                out[k] = k
                yield out[k]

        batches = list(safegen.guard(slots, mode="freeze")())
        assert [b[0] for b in batches] == [0.0, 1.0, 2.0, 3.0]

    def test_write_through_strided_views_is_caught(self):
        """sliding_window_view leaves (a DummyArray base) still freeze the buffer behind."""

        def windows():
            x = np.zeros((8, 4))
            while True:
                x[...] += 1
                yield np.lib.stride_tricks.sliding_window_view(x, 2, axis=0)

        it = safegen.guard(windows, mode="freeze")()
        next(it)
        with pytest.raises(ValueError, match="read-only"):
            next(it)

    def test_unrelated_value_error_has_no_note(self):
        """Other ValueErrors from the generator pass through untouched."""

        def broken():
            yield np.zeros(2)
            raise ValueError("not about buffers")

        it = safegen.guard(broken, mode="freeze")()
        next(it)
        with pytest.raises(ValueError, match="not about buffers") as info:
            next(it)
        assert not getattr(info.value, "__notes__", None)

    def test_in_place_ufunc_write_is_caught(self):
        """np.add(x, 1, out=x) into a yielded buffer fails too, with the note."""

        def accumulate():
            total = np.zeros(3)
            while True:
                np.add(total, 1, out=total)
                yield total

        it = safegen.guard(accumulate, mode="freeze")()
        next(it)
        with pytest.raises(ValueError, match="read-only") as info:
            next(it)
        assert "'total'" in info.value.__notes__[0]


class TestFreezeAccounting:
    """Freeze mode counts what it stopped and says what it cannot protect (issue 19, bug 5)."""

    def test_stopped_write_is_counted(self):
        """The write freeze mode stopped is a violation in the stats (and the summary)."""
        it = safegen.guard(seed.reused_buffer, mode="freeze")()
        next(it)
        with pytest.raises(ValueError, match="read-only"):
            next(it)
        assert safegen.stats(it).violations == 1

    def test_unprotected_leaf_warned_once_per_source(self):
        """A bytearray leaf: one SafegenWarning for the source, naming copy and check
        mode, pointing at the caller's line."""

        @safegen.guard(mode="freeze")
        def buffers():
            for _ in range(3):
                yield np.zeros(1), bytearray(2)

        with pytest.warns(safegen.SafegenWarning, match=r"leaf \[1\] is a bytearray") as caught:
            line = sys._getframe().f_lineno + 1
            list(buffers())
            list(buffers())
        assert len(caught) == 1
        assert 'mode="copy" copies it' in str(caught[0].message)
        assert caught[0].filename == __file__ and caught[0].lineno == line


class TestForms:
    """Every form guard accepts keeps the generator protocol."""

    def test_bare_and_called_decorator(self):
        """@guard and @guard(...) both return wrappers that keep the name and doc."""

        @safegen.guard
        def bare():
            """Doc."""
            yield np.zeros(1)

        @safegen.guard(mode="copy", window=3)
        def called():
            yield np.zeros(1)

        assert bare.__name__ == "bare" and bare.__doc__ == "Doc."
        assert inspect.isgeneratorfunction(bare)
        assert len(list(bare())) == 1 and len(list(called())) == 1

    def test_result_is_a_real_generator(self, any_mode):
        """The guarded generator passes isinstance(GeneratorType) and inspect.isgenerator."""
        gen = safegen.guard(seed.fresh_buffer, mode=any_mode)()
        assert isinstance(gen, types.GeneratorType) and inspect.isgenerator(gen)
        assert gen.__name__ == "fresh_buffer"

    def test_send_throw_close_and_return_value(self, any_mode):
        """send, throw, close and StopIteration.value pass through unchanged."""
        log = []

        def echo():
            received = None
            try:
                while True:
                    try:
                        received = yield np.array([received or 0])
                    except KeyError as exc:
                        log.append(("caught", exc.args[0]))
                        received = -1
                    if received == 99:
                        return "done"
            finally:
                log.append("closed")

        gen = safegen.guard(echo, mode=any_mode)()
        assert next(gen).tolist() == [0]
        assert gen.send(5).tolist() == [5]
        assert gen.throw(KeyError("k")).tolist() == [-1]
        with pytest.raises(StopIteration) as stop:
            gen.send(99)
        assert stop.value.value == "done"
        gen2 = safegen.guard(echo, mode=any_mode)()
        next(gen2)
        gen2.close()
        assert log == [("caught", "k"), "closed", "closed"]

    def test_exception_keeps_its_traceback(self):
        """An exception from the generator carries the generator's own frame."""

        def failing():
            yield np.zeros(1)
            raise KeyError("boom")

        gen = safegen.guard(failing)()
        next(gen)
        with pytest.raises(KeyError) as info:
            next(gen)
        assert traceback.extract_tb(info.value.__traceback__)[-1].name == "failing"

    def test_throw_uncaught_propagates(self):
        """An exception thrown in and not caught comes back out."""
        gen = safegen.guard(seed.fresh_buffer)()
        next(gen)
        with pytest.raises(OSError, match="thrown"):
            gen.throw(OSError("thrown"))

    def test_yield_from_a_guarded_generator(self):
        """yield from sees values, sends and the return value."""

        @safegen.guard
        def inner():
            got = yield np.zeros(1)
            return got

        def outer():
            result = yield from inner()
            yield result

        gen = outer()
        next(gen)
        assert gen.send("sent") == "sent"

    class Holder:
        """Generator methods of every kind."""

        def __init__(self):
            self.x = np.zeros(2)

        @safegen.guard
        def instance(self):
            while True:
                self.x += 1
                yield self.x

        @safegen.guard
        @classmethod
        def klass(cls):
            x = np.zeros(2)
            while True:
                x += 1
                yield x

        @safegen.guard
        @staticmethod
        def static():
            x = np.zeros(2)
            while True:
                x += 1
                yield x

    @pytest.mark.parametrize("name", ["instance", "klass", "static"])
    def test_methods(self, name):
        """Instance, class and static generator methods are guarded."""
        gen = getattr(self.Holder(), name)()
        assert inspect.isgenerator(gen)
        next(gen)
        with pytest.raises(safegen.AliasingError, match="yield #1 array"):
            next(gen)

    def test_class_level_access(self):
        """Class methods and static methods also work when called on the class."""
        for name in ("klass", "static"):
            gen = getattr(self.Holder, name)()
            next(gen)
            with pytest.raises(safegen.AliasingError):
                next(gen)

    def test_async_generator(self, any_mode):
        """Async generator functions are guarded; asend and aclose pass through."""

        @safegen.guard(mode=any_mode, on_violation="warn")
        async def batches():
            x = np.zeros(2)
            for i in range(3):
                x[:] = i
                got = yield x
                assert got in (None, "hi")

        async def consume():
            gen = batches()
            assert inspect.isasyncgen(gen)
            first = await gen.__anext__()
            first_value = first.tolist()
            second = await gen.asend("hi")
            await gen.aclose()
            return first_value, first, second

        if any_mode == "freeze":
            with pytest.raises(ValueError, match="read-only"):
                asyncio.run(consume())
            return
        if any_mode == "check":
            with pytest.warns(safegen.AliasingWarning):
                asyncio.run(consume())
            return
        first_value, first, second = asyncio.run(consume())
        assert first.tolist() == [0, 0] and second.tolist() == [1, 1]

    def test_async_generator_return(self):
        """An async generator that ends raises StopAsyncIteration through the guard."""

        @safegen.guard
        async def one():
            yield np.zeros(1)

        async def consume():
            return [item async for item in one()]

        assert len(asyncio.run(consume())) == 1

    def test_existing_generator_object(self):
        """guard(gen) on a generator object returns a guarded generator."""
        gen = safegen.guard(seed.reused_buffer())
        assert inspect.isgenerator(gen)
        next(gen)
        with pytest.raises(safegen.AliasingError):
            next(gen)

    def test_existing_iterator_object(self):
        """guard(it) on a plain iterator guards what it yields."""
        x = np.zeros(2)
        it = safegen.guard(iter([x, x, x]), mode="copy")
        out = list(it)
        assert len(out) == 3 and not any(np.shares_memory(o, x) for o in out)

    def test_function_returning_an_iterator(self):
        """A plain function returning an iterator is guarded on what it returns."""

        @safegen.guard
        def make():
            return seed.reused_buffer()

        it = make()
        next(it)
        with pytest.raises(safegen.AliasingError):
            next(it)
        assert safegen.stats(make).violations == 1

    def test_function_returning_an_iterable(self):
        """A function returning a list gives an iterable whose iterators are guarded."""
        x = np.zeros(2)

        @safegen.guard(mode="copy")
        def make():
            return [x, x]

        batches = make()
        assert len(batches) == 2
        out = list(batches)
        assert not np.shares_memory(out[0], x)
        assert safegen.stats(batches).arrays == 2

    def test_iterable_object(self):
        """guard(list) returns an iterable whose every iteration is guarded."""
        x = np.zeros(2)
        guarded = safegen.guard([x, x], mode="copy")
        for _ in range(2):
            assert not any(np.shares_memory(o, x) for o in guarded)

    def test_non_array_leaves_are_left_alone(self, any_mode):
        """Scalars, strings, bytes, None and unknown objects come out untouched."""
        thing = object()
        Point = collections.namedtuple("Point", "a b")
        value = (1, 2.5, "s", b"b", None, thing, np.float32(1), Point(np.zeros(1), "z"))
        out = next(safegen.guard(iter([value]), mode=any_mode))
        assert out[:7] == value[:7] and out[5] is thing
        assert isinstance(out[7], Point) and out[7].b == "z"


class TestGuardedClasses:
    """A plain iterable class, guarded: every iterator of every instance is guarded."""

    def test_iterable_class_and_its_subclasses(self):
        """@guard on a class with __iter__ guards instances, and subclasses stay guarded."""

        @safegen.guard
        class Batches:
            def __init__(self):
                self.x = np.zeros(2)

            def __iter__(self):
                while True:
                    self.x += 1
                    yield self.x

        class Sub(Batches):
            pass

        for cls in (Batches, Sub):
            it = iter(cls())
            next(it)
            with pytest.raises(safegen.AliasingError, match=r"Batches.__iter__\(\) at "):
                next(it)
        assert safegen.stats(Batches).violations >= 1

    def test_copy_mode_warns_when_a_container_cannot_be_rebuilt(self):
        """An immutable mapping subclass comes back as a dict, with a SafegenWarning."""

        class FrozenDict(dict):
            def __setitem__(self, key, value):
                raise TypeError("FrozenDict is immutable")

        value = FrozenDict(a=np.zeros(2))
        it = safegen.guard(iter([value]), mode="copy")
        with pytest.warns(safegen.SafegenWarning, match="cannot rebuild a .*FrozenDict") as got:
            line = sys._getframe().f_lineno + 1
            out = next(it)
        assert type(out) is dict and not np.shares_memory(out["a"], value["a"])
        assert got[0].filename == __file__ and got[0].lineno == line


class TestPickling:
    """Guarded functions and methods pickle (worker processes need that)."""

    def test_module_level_function(self):
        """A decorated module-level generator function pickles by reference."""
        import pickle

        from tests import cli_data

        clone = pickle.loads(pickle.dumps(cli_data.guarded_batches))
        assert clone is cli_data.guarded_batches
        first, second = next(clone()), None
        gen = clone()
        first, second = next(gen), next(gen)
        assert not np.shares_memory(first[0], second[0])

    def test_bound_method(self):
        """A guarded method bound to an instance pickles with its instance."""
        import pickle

        from tests import cli_data

        method = pickle.loads(pickle.dumps(cli_data.Holder().batches))
        gen = method()
        next(gen)
        with pytest.raises(safegen.AliasingError):
            next(gen)


@pytest.mark.slow
class TestSpawnWorkers:
    """Guarded functions and methods reach processes started with spawn."""

    def test_function_and_bound_method_in_a_spawned_pool(self):
        """A spawned worker unpickles the guarded function and method, guarded."""
        import multiprocessing

        from tests import cli_data

        with multiprocessing.get_context("spawn").Pool(1) as pool:
            function = pool.apply(cli_data.first_two_distinct, (cli_data.guarded_batches,))
            method = pool.apply(cli_data.first_two_distinct, (cli_data.Holder.fresh, 2))
        assert function == (True, 2)  # copy mode: distinct batches, counted in the worker
        assert method == (True, 2)


class TestOnWrapt:
    """Guarded functions, methods, generators and iterables are wrapt proxies."""

    def test_every_wrapper_is_a_wrapt_proxy(self):
        """A guarded function, its generator, a bound method and an iterable are proxies."""
        import wrapt

        from tests import cli_data

        @safegen.guard
        def make():
            return [np.zeros(2)]

        holder = cli_data.Holder()
        for wrapper in (
            cli_data.guarded_batches,
            cli_data.guarded_batches(),
            holder.batches,
            holder.batches(),
            make,
            make(),
        ):
            # wrapt 2 names the common base BaseObjectProxy; wrapt 1, ObjectProxy.
            assert isinstance(wrapper, getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy))
        assert isinstance(cli_data.guarded_batches, wrapt.FunctionWrapper)

    @pytest.mark.parametrize("kind", [classmethod, staticmethod])
    @pytest.mark.parametrize("order", ["guard over", "guard under"])
    def test_class_and_static_methods_in_either_order(self, kind, order):
        """guard over or under classmethod/staticmethod binds, introspects and checks."""

        def batches(*args):
            x = np.zeros(2)
            while True:
                x += 1
                yield x

        method = (
            safegen.guard(kind(batches)) if order == "guard over" else kind(safegen.guard(batches))
        )
        Owner = type("Owner", (), {"batches": method})
        for bound in (Owner.batches, Owner().batches):
            assert inspect.isgeneratorfunction(bound)
            assert str(inspect.signature(bound)) == "(*args)"
            gen = bound()
            next(gen)
            with pytest.raises(safegen.AliasingError):
                next(gen)

    def test_classmethod_receives_its_class(self):
        """A guarded classmethod is called with the class, on the class and on an instance."""
        seen = []

        class Owner:
            @safegen.guard
            @classmethod
            def batches(cls):
                seen.append(cls)
                yield np.zeros(1)

        class Child(Owner):
            pass

        for where in (Owner, Owner(), Child, Child()):
            list(where.batches())
        assert seen == [Owner, Owner, Child, Child]

    def test_callables_without_a_name(self):
        """A partial or a callable object guards, and reprs, without a __qualname__."""
        import functools

        def gen(start):
            yield np.full(1, start)

        class Callable:
            def __call__(self):
                yield np.zeros(1)

        partial = safegen.guard(functools.partial(gen, 3))
        assert [b.tolist() for b in partial()] == [[3]]
        assert repr(partial).startswith("<safegen-guarded function functools.partial(")
        instance = safegen.guard(Callable())
        assert [b.tolist() for b in instance()] == [[0.0]]
        assert "Callable object" in repr(instance)
        assert repr(TestForms.Holder().instance).startswith(
            "<safegen-guarded bound method TestForms.Holder.instance"
        )

    def test_bound_methods_are_guarded_and_copy_like_methods(self):
        """A bound guarded method is_guarded (wrapt 1 and 2), copies as itself and
        deep-copies as the same method of a deep copy of its instance."""
        import copy

        from safegen._guard import is_guarded
        from tests import cli_data

        holder = cli_data.Holder()
        for method in (holder.batches, cli_data.Holder.fresh, holder.fresh):
            assert is_guarded(method)
            assert safegen.stats(method).yields >= 0
            assert copy.copy(method) is method
        clone = copy.deepcopy({"m": holder.batches})["m"]
        assert clone.__self__ is not holder and isinstance(clone.__self__, cli_data.Holder)
        assert is_guarded(clone) and np.array_equal(clone.__self__.x, holder.x)
        assert copy.deepcopy(cli_data.Holder.fresh).__self__ is cli_data.Holder

    def test_unpicklable_callables_are_refused_clearly(self):
        """A guarded partial cannot pickle by name: a TypeError says so."""
        import functools
        import pickle

        def batches(n):
            yield np.zeros(n)

        guarded = safegen.guard(functools.partial(batches, 2))
        with pytest.raises(TypeError, match="pickles by its module-level name"):
            pickle.dumps(guarded)

    def test_guarded_iterables_compare_by_identity(self):
        """A guarded list of arrays hashes and compares as itself, not as the list."""
        batches = [np.zeros(2), np.ones(2)]
        guarded = safegen.guard(batches)
        assert guarded == guarded and guarded != batches and hash(guarded) == hash(guarded)
        assert {guarded: 1}[guarded] == 1

    def test_class_bound_classmethod_pickles(self):
        """A guarded classmethod taken from its class pickles by reference to it."""
        import pickle

        from tests import cli_data

        clone = pickle.loads(pickle.dumps(cli_data.Holder.fresh))
        assert [b.tolist() for b in clone(2)] == [[0.0], [1.0]]
        assert safegen.stats(clone).yields >= 2

    def test_stats_of_a_bound_method_are_the_function_s(self):
        """stats() on a method bound to any instance sums every generator it made."""
        from tests import cli_data

        before = safegen.stats(cli_data.Holder.fresh).yields
        list(cli_data.Holder().fresh(3))
        list(cli_data.Holder.fresh(2))
        assert safegen.stats(cli_data.Holder().fresh).yields == before + 5


class TestModesAndConfiguration:
    """Where the mode comes from."""

    def test_off_returns_the_original_function(self):
        """mode='off' given to the decorator hands the function back unchanged."""
        assert safegen.guard(seed.reused_buffer, mode="off") is seed.reused_buffer
        gen = seed.reused_buffer()
        assert safegen.guard(gen, mode="off") is gen

    def test_context_manager_nests_and_restores(self):
        """safegen.mode() nests, restores on exit and on error."""
        guarded = safegen.guard(seed.reused_buffer)
        with safegen.mode("copy"):
            assert seed.consistent(_pairs(guarded(), 2)[0])
            with safegen.mode("off"):
                gen = guarded()
                assert not seed.consistent(_pairs(gen, 2)[0])
            with pytest.raises(KeyError):
                with safegen.mode("freeze"):
                    raise KeyError
            assert safegen.settings().mode == "copy"
        assert safegen.settings().mode == "check"

    def test_decorator_argument_wins(self):
        """An explicit mode on the decorator wins over safegen.mode()."""
        guarded = safegen.guard(seed.reused_buffer, mode="copy")
        with safegen.mode("check"):
            assert seed.consistent(_pairs(guarded(), 2)[0])

    def test_configure(self):
        """configure() changes the defaults for generators created afterwards."""
        guarded = safegen.guard(seed.reused_buffer)
        safegen.configure(on_violation="warn", window=3)
        with pytest.warns(safegen.AliasingWarning):
            _pairs(guarded(), 2)
        assert safegen.settings().window == 3

    def test_environment_variable(self, monkeypatch):
        """SAFEGEN_MODE is read (on reset/import) and validated."""
        from safegen import _config

        monkeypatch.setenv("SAFEGEN_MODE", "copy")
        _config.reset()
        assert safegen.settings().mode == "copy"
        monkeypatch.setenv("SAFEGEN_MODE", "sometimes")
        _config.reset()  # read on first use, not here
        with pytest.raises(ValueError, match="SAFEGEN_MODE.*'check', 'copy', 'freeze', 'off'"):
            safegen.settings()
        with pytest.raises(ValueError, match="SAFEGEN_MODE"):
            safegen.guard(seed.reused_buffer)

    @pytest.mark.parametrize(
        ("call", "error", "match"),
        [
            (lambda: safegen.guard(mode="fast"), ValueError, "invalid mode 'fast'.*'check'"),
            (lambda: safegen.guard(on_violation="log"), ValueError, "'raise', 'warn'"),
            (lambda: safegen.guard(window=0), ValueError, "window must be an int >= 1"),
            (lambda: safegen.guard(window=2.5), TypeError, "window must be an int"),
            (lambda: safegen.guard(verify_all="yes"), TypeError, "verify_all"),
            (lambda: safegen.configure(mode="cpy"), ValueError, "configure"),
            (lambda: safegen.mode("none").__enter__(), ValueError, "safegen.mode"),
        ],
    )
    def test_invalid_values_are_refused(self, call, error, match):
        """Invalid options are refused with the valid values listed."""
        with pytest.raises(error, match=match):
            call()


class TestMisuse:
    """Clear errors for what cannot be guarded."""

    @pytest.mark.parametrize(
        ("obj", "message"),
        [
            ("copy", r"did you mean @safegen.guard\(mode='copy'\)\?"),
            ({"x": np.zeros(2)}, "give it the generator function.*got dict"),
            (np.zeros(3), "got ndarray"),
            (b"bytes", "got bytes"),
            (range, "cannot guard the class range"),
            (int, "cannot guard the class int|neither a Keras PyDataset nor iterable"),
        ],
    )
    def test_mistakes_are_refused(self, obj, message):
        """Strings, mappings, arrays and unusable classes are refused with a hint."""
        with pytest.raises(TypeError, match=message):
            safegen.guard(obj)

    def test_coroutine_function_is_refused(self):
        """async def without yield is refused at decoration, not at the call."""

        async def one():
            return np.zeros(2)

        with pytest.raises(TypeError, match="coroutine function .*async \\*generator\\*"):
            safegen.guard(one)

    def test_numpy_integer_window(self):
        """window accepts NumPy integers; a non-string mode is a TypeError."""
        it = safegen.guard(iter([np.zeros(1)]), window=np.int64(3))
        assert len(list(it)) == 1
        with pytest.raises(TypeError, match="mode must be a string"):
            safegen.guard(mode=1)

    def test_not_callable_nor_iterable(self):
        """guard(42) raises TypeError naming the object."""
        with pytest.raises(TypeError, match=r"safegen.guard\(\) needs .* got int 42"):
            safegen.guard(42)

    def test_function_returning_non_iterable(self):
        """A guarded function returning a number raises TypeError at the call."""

        @safegen.guard
        def number():
            return 3

        with pytest.raises(TypeError, match=r"number\(\) at .* it returned int 3"):
            number()

    @pytest.mark.parametrize(
        "returned",
        [np.zeros(3), {"x": np.zeros(3)}, "batches"],
        ids=["ndarray", "dict", "str"],
    )
    def test_function_returning_array_mapping_or_string(self, returned):
        """A guarded callable returning an array, a mapping or a string (iterable, but not
        over batches) is refused at the call, as guard(np.zeros(3)) is refused."""
        guarded = safegen.guard(lambda: returned)
        kind = type(returned).__qualname__
        with pytest.raises(
            TypeError,
            match=rf"<lambda>\(\) at .* iterable of batches; it returned {kind} .*: "
            r"safegen\.guard\(\) checks what a generator",
        ):
            guarded()

    def test_stats_of_unguarded(self):
        """stats() on something unguarded raises TypeError."""
        with pytest.raises(TypeError, match="guarded by safegen.guard"):
            safegen.stats(seed.fresh_buffer())


class TestWrapperLooksLikeWhatItWraps:
    """The wrapper (a wrapt proxy) passes for the function or iterable it wraps."""

    def test_function_metadata_and_signature(self):
        """Name, doc, module, signature and generator-ness are the function's."""

        @safegen.guard
        def batches(batch_size: int = 4, *, seed: int = 0):
            """Doc."""
            yield np.zeros(batch_size)

        assert (batches.__name__, batches.__doc__, batches.__module__) == (
            "batches",
            "Doc.",
            __name__,
        )
        signature = inspect.signature(batches)
        assert signature == inspect.signature(batches.__wrapped__)
        assert list(signature.parameters) == ["batch_size", "seed"]
        assert inspect.isgeneratorfunction(batches) and batches.__wrapped__.__name__ == "batches"

    def test_methods_bind_like_functions(self):
        """An instance method binds (equal per instance, signature without self) and works
        called on the class with the instance given."""
        holder = TestForms.Holder()
        assert holder.instance == holder.instance and hash(holder.instance) == hash(holder.instance)
        assert holder.instance != TestForms.Holder().instance
        assert str(inspect.signature(holder.instance)) == "()"
        assert inspect.isgeneratorfunction(holder.instance)
        gen = TestForms.Holder.instance(holder)
        next(gen)
        with pytest.raises(safegen.AliasingError):
            next(gen)

    def test_iterable_proxy(self):
        """A guarded function's list result: isinstance, len, indexing and `in` see the list."""
        x = np.zeros(2)

        @safegen.guard(mode="copy")
        def make():
            return [x, x]

        batches = make()
        assert isinstance(batches, list) and len(batches) == 2 and batches[0] is x
        assert x in batches and bool(batches) and batches.count(x) == 2
        assert repr(batches).startswith("<safegen-guarded [array(")
        with pytest.raises(TypeError, match="cannot pickle a safegen-guarded list"):
            import pickle

            pickle.dumps(batches)
