"""Generators, iterators and async generators: each guarded one gets a handle, and is
handed out as a proxy that passes every value through its mode.

A generator is stepped by its proxy (:meth:`GuardedGenerator.__next__`: send, then
process) under a per-generator lock kept on its handle; a plain iterator is driven by a
generator of safegen's (:func:`_run_iterator`), so that frameworks that accept only
generators take it; an async generator is driven by an async generator of safegen's
(:func:`_run_async`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Generator, Iterator
from typing import Any

import wrapt

from safegen._config import Options, Settings
from safegen._detectors.generators import Watcher, open_channel
from safegen._handle import Handle, handle_of, register
from safegen._modes import Source
from safegen._sources._base import ByIdentity, SourceKind, source_of
from safegen._stats import Totals

__all__ = ["GeneratorHandle", "GuardedGenerator", "GuardedIterator", "Iterators", "guard_iterator"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


def _ended() -> Generator[Any, Any, None]:
    return
    yield  # pragma: no cover


class GeneratorHandle(Handle):
    """The handle of a guarded generator, which its proxy steps (:class:`GuardedGenerator`).

    ``acquire`` and ``unlock`` are the lock's own methods, kept for the proxy's calls
    (a ``with`` statement costs more than the two calls, on every ``next()``);
    ``process`` is the mode's.
    """

    __slots__ = ("acquire", "driver", "process", "unlock")

    def __init__(
        self,
        settings: Settings,
        source: Source,
        producer: Any,
        totals: Totals | None = None,
    ) -> None:
        super().__init__(settings, source, producer=producer, background=True, totals=totals)
        self.driver: Any = producer
        self.process = self.mode.process
        self.acquire = self.lock.acquire
        self.unlock = self.lock.release

    def locked(self, method: Any, *args: Any) -> Any:
        """``method(*args)`` under the generator's lock."""
        self.acquire()
        try:
            return method(*args)
        finally:
            self.unlock()

    def close(self) -> None:
        self.producer.close()

    def finish(self) -> None:
        """The generator is exhausted: the mode's last checks, once."""
        if self.driver is self.producer:
            self.driver = _ended()
            self.mode.finish()

    def end(self) -> None:
        """The mode raised: the guarded generator is finished (``on_violation="raise"``)."""
        self.driver = _ended()

    def before_fork(self) -> None:
        if self.channel is None and self.settings.mode != "off":
            self.channel = open_channel(self.source, self.settings.mode)

    def after_fork(self) -> None:
        if self.channel is not None:
            self.intercept(Watcher(self))


class IteratorHandle(GeneratorHandle):
    """The handle of a guarded plain iterator: ``driver`` is the generator of safegen's
    that drives it (:func:`_run_iterator`), which processes by itself."""

    __slots__ = ()

    def step(self, sent: Any, thrown: tuple[Any, ...] | None = None) -> Any:
        if thrown is None:
            return self.driver.send(sent)
        return self.driver.throw(*thrown)

    def close(self) -> None:
        self.driver.close()


def _run_iterator(it: Iterator[Any], handle: Handle) -> Generator[Any, None, None]:
    """Iterate a plain iterator, passing each value through the handle's mode."""
    mode = handle.mode
    process = mode.process
    advance = it.__next__
    while True:
        if mode.inflight is not None:
            mode.settle()
        try:
            value = advance()
        except StopIteration:
            mode.finish()
            return
        except BaseException as exc:
            mode.annotate(exc)
            raise
        yield process(value)


async def _advance(mode: Any, step: Any) -> tuple[bool, Any]:
    """Await ``step`` (an ``asend`` or ``athrow``): ``(True, None)`` when the async
    generator is exhausted, else ``(False, value)``."""
    try:
        return False, await step
    except StopAsyncIteration:
        mode.finish()
        return True, None
    except BaseException as exc:
        mode.annotate(exc)
        raise


async def _run_async(agen: AsyncGenerator[Any, Any], handle: Handle) -> AsyncGenerator[Any, Any]:
    """Drive an async generator, passing each value through the handle's mode."""
    mode = handle.mode
    process = mode.process
    done, value = await _advance(mode, agen.asend(None))
    while not done:
        out = process(value)
        try:
            sent = yield out
            # Drop our reference at once: in copy mode the consumer may already have
            # freed this batch, and its memory can serve the next copy.
            out = None
        except GeneratorExit:
            await agen.aclose()
            raise
        except BaseException as thrown:
            out = None
            if mode.inflight is not None:
                mode.settle()
            done, value = await _advance(mode, agen.athrow(thrown))
            continue
        if mode.inflight is not None:
            mode.settle()
        done, value = await _advance(mode, agen.asend(sent))


class GuardedGenerator(ByIdentity, wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A guarded generator that several threads may share.

    ``next()``, ``send()``, ``throw()`` and ``close()`` take a per-generator lock, as the
    ``threadsafe_generator`` recipe of Keras 2 users did by hand: two threads never run
    the generator at once (a bare generator raises ``ValueError: generator already
    executing``, which tf_keras turns into "Your generator is NOT thread-safe"), each
    value goes to exactly one caller, and safegen's bookkeeping for a yield is done
    before the next one starts. Everything else (``gi_frame``, ``__name__``,
    ``isinstance(g, types.GeneratorType)``, ``inspect.isgenerator``) sees the generator.
    The lock is reentrant, so a generator that calls ``next()`` on itself still gets
    Python's own ``ValueError``.
    """

    # A slot, read in __next__ through its descriptor: a wrapt proxy's own attribute
    # look-up goes through its __getattribute__ hook, which costs about as much again as
    # the rest of the step's bookkeeping (see benchmarks/per_yield.py).
    __slots__ = ("_self_handle",)

    def __init__(self, wrapped: Generator[Any, Any, Any], handle: GeneratorHandle) -> None:
        super().__init__(wrapped)
        self._self_handle = handle

    def __iter__(self) -> GuardedGenerator:
        return self

    def __next__(self, sent: Any = None, thrown: tuple[Any, ...] | None = None) -> Any:
        # The generator's step, written here rather than called: a Python call costs as
        # much as the bookkeeping it would hold (see benchmarks/per_yield.py).
        handle = _handle_of_proxy(self)
        # The lock's methods and the mode's process are read into locals, then called:
        # a call written `handle.acquire()` looks the name up on the class first, as for
        # a method, which costs more than the slot's own read.
        unlock = handle.unlock
        acquire = handle.acquire
        acquire()
        try:
            if handle.watcher is not None:  # a detector watches the first calls
                return handle.watcher(self, sent, thrown)
            mode = handle.mode
            if mode.inflight is not None:  # hashes still running (check mode, large arrays)
                mode.settle()
            try:
                if thrown is None:
                    value = handle.driver.send(sent)
                else:
                    value = handle.driver.throw(*thrown)
            except StopIteration:
                handle.finish()
                raise
            except BaseException as exc:
                mode.annotate(exc)
                raise
            process = handle.process
            try:
                return process(value)
            except BaseException:
                handle.end()
                raise
        finally:
            unlock()

    def send(self, value: Any) -> Any:
        return type(self).__next__(self, value)

    def throw(self, *args: Any) -> Any:
        return type(self).__next__(self, None, args)

    def close(self) -> None:
        handle = _handle_of_proxy(self)
        handle.locked(handle.close)

    def __repr__(self) -> str:
        return f"<safegen-guarded {self.__wrapped__!r}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("cannot pickle a safegen-guarded 'generator' object")

    def __copy__(self) -> Any:
        raise TypeError("cannot copy a safegen-guarded 'generator' object")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError("cannot copy a safegen-guarded 'generator' object")


_handle_of_proxy = GuardedGenerator.__dict__["_self_handle"].__get__


class GuardedIterator(GuardedGenerator):
    """A guarded plain iterator: the generator of safegen's that drives it, shared as a
    guarded generator is."""

    __slots__ = ()

    def __next__(self, sent: Any = None, thrown: tuple[Any, ...] | None = None) -> Any:
        handle = _handle_of_proxy(self)
        if handle.watcher is not None:
            return handle.locked(handle.watcher, self, sent, thrown)
        return handle.locked(handle.step, sent, thrown)


def guard_iterator(
    obj: Any, settings: Settings, source: Source, totals: Totals | None = None
) -> Any:
    """A guarded generator (or async generator) yielding what ``obj`` yields.

    Generators and iterators come back as a :class:`GuardedGenerator`, safe to share
    between threads; async generators as an async generator (one event loop runs them).
    """
    if settings.mode == "off":
        return obj
    if inspect.isasyncgen(obj):
        handle = Handle(settings, source, producer=obj, background=True, totals=totals)
        driver: Any = _run_async(obj, handle)
        _name_like(driver, obj)
        register(driver, handle)
        return driver
    if inspect.isgenerator(obj):
        generator = GeneratorHandle(settings, source, obj, totals)
        wrapped: Any = obj
    else:
        generator = IteratorHandle(settings, source, obj, totals)
        wrapped = generator.driver = _run_iterator(obj, generator)
        _name_like(wrapped, obj)
    guarded = (GuardedIterator if isinstance(generator, IteratorHandle) else GuardedGenerator)(
        wrapped, generator
    )
    register(guarded, generator)
    return guarded


def _name_like(driver: Any, obj: Any) -> None:
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str):
        driver.__name__ = getattr(obj, "__name__", qualname)
        driver.__qualname__ = qualname


def yielding_source(result: Any, source: Source) -> Source:
    """Who yields: the generator ``result`` when the guarded function is a factory that
    returned it (``batch_generator()``, made by ``make()``), else ``source`` itself; a
    generator already guarded (by the function's own ``@safegen.guard``) is named as that
    guard names it."""
    inner = handle_of(result) if isinstance(result, GuardedGenerator) else None
    if isinstance(inner, Handle):
        return inner.source
    code = getattr(result, "gi_code", None) or getattr(result, "ag_code", None)
    if code is None or code is source.code:
        return source
    name = getattr(result, "__qualname__", None) or code.co_name
    return Source(f"{name}()", code, source.kind, made_by=source.where())


class Iterators(SourceKind):
    """Generator, async generator and iterator objects (what has ``__next__``)."""

    name = "iterator"

    @staticmethod
    def accepts(obj: Any) -> bool:
        return inspect.isgenerator(obj) or inspect.isasyncgen(obj) or hasattr(obj, "__next__")

    @staticmethod
    def guard(obj: Any, options: Options, role: str) -> Any:
        return guard_iterator(obj, options.resolve(), source_of(obj))
