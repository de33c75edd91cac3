"""The one handle per guarded source: everything safegen keeps about it, in one object.

A guarded generator (or iterator, or async generator) and a guarded dataset instance each
have one :class:`Handle`: its settings, its name and location (``source``), its mode's
state (``mode``: check, copy or freeze), its detectors, its channel to worker processes,
and the lock that serializes safegen's bookkeeping. Detectors read the source through
the handle's methods (:meth:`Handle.last_batch`, :meth:`Handle.settle`,
:meth:`Handle.intercept`), never through another module's privates.

Where a handle lives: on the object safegen hands out (a generator proxy's ``_self_handle``,
a dataset instance's ``__dict__["_safegen"]``, which travels to worker processes with the
dataset); an async generator, which takes no attribute, is found in the one registry
here, which also lists the generators to watch in forked worker processes.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from safegen._config import Settings
from safegen._errors import SafegenError
from safegen._modes import Source, make_state
from safegen._stats import Stats, Totals

__all__ = ["ATTRIBUTE", "Guarded", "Handle", "Tap", "fork_generation", "handle_of", "register"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# The one attribute safegen sets on the user's objects: a dataset instance's handle, a
# guarded class's or function's `Guarded` record, the marker on safegen's own wrappers.
ATTRIBUTE = "_safegen"

# The one registry, of what safegen cannot keep on the object itself: the handle of
# every guarded generator (async generators take no attribute, and the others are given
# a channel at a fork), and the guarded subclass that instances of a dataset class get
# from guard(instance) (safegen._sources.datasets). Keys are weak.
_REGISTRY: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
# Bumped in a forked child: a handle made in an earlier generation starts afresh there.
_generation = [0]


def fork_generation() -> int:
    """How many forks lie between the first process and this one."""
    return _generation[0]


class Handle:
    """One guarded source in one process.

    Attributes:
        settings: the options it runs with.
        source: its name and location, for messages.
        mode: the mode's per-source state (``safegen._modes``): ``process`` runs after
            every yield or batch.
        channel: its channel to worker processes (``safegen._detectors``), or ``None``.
        detectors: the detectors called after each batch; ``early``, those also called
            before it.
        lock: serializes the source's bookkeeping (and, for a generator, its calls).
        producer: the object that yields (the generator itself), or ``None``.
    """

    __slots__ = (
        "__weakref__",
        "channel",
        "detectors",
        "early",
        "generation",
        "lock",
        "mode",
        "producer",
        "settings",
        "source",
        "watcher",
    )

    def __init__(
        self,
        settings: Settings,
        source: Source,
        *,
        producer: Any = None,
        background: bool = False,
        totals: Totals | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.producer = producer
        self.channel: Any = None
        self.detectors: tuple[Any, ...] = ()
        self.early: tuple[Any, ...] = ()
        self.lock = threading.RLock()
        self.generation = _generation[0]
        self.watcher: Any = None
        self.mode = make_state(settings, source, background)
        self.mode.producer = producer
        if totals is not None:
            totals.track(self.mode, self.mode.stats)

    # -- What detectors and the other ways in ask ------------------------------------

    @property
    def stats(self) -> Stats:
        """The live counters (``safegen.stats`` hands out a snapshot)."""
        stats: Stats = self.mode.stats
        return stats

    @property
    def yields(self) -> int:
        """How many values (yields or batches) have gone through the guard here."""
        count: int = self.mode.stats.yields
        return count

    def last_batch(self) -> tuple[list[Any], list[int]] | None:
        """Check mode: the arrays of the last yield (or batch) and their digests, once
        every hash of it is done; ``None`` in the other modes or before the first."""
        return self.mode.last_batch()

    def settle(self) -> None:
        """Finish the work the last yield left running (background hashes)."""
        if self.mode.inflight is not None:
            self.mode.settle()

    def intercept(self, watcher: Any) -> None:
        """Have ``watcher(proxy, sent, thrown)`` make the generator's next steps (a
        detector watching the first calls in a worker process), under the generator's
        lock; :meth:`release` gives them back."""
        self.watcher = watcher

    def release(self) -> None:
        """Undo :meth:`intercept`."""
        self.watcher = None

    def step(self, sent: Any, thrown: tuple[Any, ...] | None = None) -> Any:
        raise NotImplementedError  # pragma: no cover - plain iterators define it

    def before_fork(self) -> None:
        """In the parent, before a fork (generators: open the channel)."""

    def after_fork(self) -> None:
        """In the forked child (generators: watch the first calls)."""


def register(obj: Any, handle: Handle) -> None:
    """Find ``handle`` from ``obj`` (a guarded generator or async generator) from now on."""
    with _lock:
        _REGISTRY[obj] = handle


def handle_of(obj: Any) -> Any:
    """The handle behind ``obj`` (or the :class:`Guarded` record of a guarded function,
    iterable or class), or ``None`` when safegen does not guard it.

    Looks on safegen's proxies (``_self_handle``, also on a bound method's parent), in a
    dataset instance's or guarded class's ``__dict__``, then in the registry.
    """
    for candidate in (obj, getattr(obj, "_self_parent", None)):
        try:
            found = getattr(candidate, "_self_handle", None)
        except Exception:  # noqa: BLE001 - an object whose attribute lookup fails
            found = None
        if isinstance(found, (Handle, Guarded)):
            return found
    attributes = getattr(obj, "__dict__", None)
    if attributes is not None and hasattr(attributes, "get"):
        try:
            found = attributes.get(ATTRIBUTE)
        except Exception:  # noqa: BLE001 - not a mapping after all
            found = None
        if isinstance(found, (Handle, Guarded)):
            return found
    try:
        return _REGISTRY.get(obj)
    except TypeError:  # unhashable, or not weakly referenceable
        return None


class Guarded:
    """What a guarded function, iterable or class keeps: its options (resolved when
    each generator or instance is made) and the totals of every source it made."""

    __slots__ = ("options", "totals")

    def __init__(self, options: Any) -> None:
        self.options = options
        self.totals = Totals()

    @property
    def stats(self) -> Stats:
        return self.totals.total()


def _before_fork() -> None:
    with _lock:
        handles = [h for h in _REGISTRY.values() if isinstance(h, Handle)]
    for handle in handles:
        handle.before_fork()


def _after_fork_in_child() -> None:
    """No lock taken, no object made but what the handles make: another thread of the
    parent may have held a lock at the fork."""
    global _lock
    _lock = threading.Lock()
    _generation[0] += 1
    for handle in list(_REGISTRY.values()):
        if isinstance(handle, Handle):
            handle.after_fork()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


class Tap:
    """A guarded generator's steps in this process, each yield handed to ``feeds`` (objects
    with ``seen(batch, index) -> bool``: whether they want more) until none wants more
    (then the generator steps on its own again, at no cost).

    Installed with :meth:`Handle.intercept`; it runs under the generator's lock,
    releases itself around the step and intercepts again while some feed goes on. A
    feed that fails on something safegen did not foresee is dropped, without stopping
    the user's training; a feed's finding raised (``on_violation="raise"``) goes through.
    """

    __slots__ = ("count", "feeds", "handle")

    def __init__(self, handle: Any, feeds: Iterable[Any]) -> None:
        self.handle = handle
        self.feeds = tuple(feeds)
        self.count = 0

    @classmethod
    def install(cls, handle: Any, feeds: Iterable[Any]) -> Callable[[], None] | None:
        """Hand ``handle``'s generator's yields to ``feeds`` too: a generator has one tap,
        shared by every check that reads its batches (the input-scale and the split checks
        of one ``fit``). Returns the function that stops these feeds, or ``None`` when
        something else watches the generator (a detector in a worker process)."""
        feeds = tuple(feeds)
        if not feeds:
            return None
        with handle.lock:
            current = handle.watcher
            if isinstance(current, cls):
                tap = current
                tap.feeds = tap.feeds + feeds
            elif current is not None:
                return None
            else:
                tap = cls(handle, feeds)
                handle.intercept(tap)

        def stop() -> None:
            with handle.lock:
                tap.feeds = tuple(feed for feed in tap.feeds if feed not in feeds)
                if not tap.feeds and handle.watcher is tap:
                    handle.release()

        return stop

    def __call__(self, proxy: Any, sent: Any, thrown: Any) -> Any:
        handle = self.handle
        handle.release()
        out = type(proxy).__next__(proxy, sent, thrown)
        index = self.count
        self.count += 1
        kept = []
        found: BaseException | None = None
        for feed in self.feeds:
            try:
                if feed.seen(out, index):
                    kept.append(feed)
            except SafegenError as error:  # a finding, raised: the others go on
                found = found or error
            except Exception:  # noqa: BLE001, S112 - safegen's fault: drop the feed
                continue
        self.feeds = tuple(kept)
        if kept and handle.watcher is None:
            handle.intercept(self)
        if found is not None:
            raise found
        return out
