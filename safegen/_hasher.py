"""Hashing large arrays on a background thread while the consumer works on the batch.

Check mode pins a change on the generator, and the generator cannot run before the
consumer's next ``next()``. So the hash of a large yielded array need not delay the
consumer: it can run on another thread (XXH3 releases the GIL while it reads) as long as
it is complete before the generator resumes. :class:`Job` is one yield's worth of such
hashes; :func:`submit` hands it to the process's hashing thread, and :meth:`Job.wait`,
called before the generator resumes, returns the digests.

One daemon thread serves every generator of the process, started on first use and gone
after ``IDLE_SECONDS`` without work, so no thread is left behind however many generators
are made or dropped (nor long after the last one); a job nobody waits for is finished
and forgotten. Whoever comes first runs a job: if the consumer asks for
the digests before the thread has started on them (an idle consumer, a busy machine),
the caller hashes them itself instead of waiting for a thread to be scheduled. An error
raised while hashing is raised again by :meth:`Job.wait`, in the caller's thread. After
``os.fork`` the child starts with no thread and an empty queue, and a job that was in
flight at the fork is hashed again in the child by the caller.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Job", "submit"]


class Job:
    """``digest(item)`` for each item, computed once, by the hashing thread or the caller.

    Example:
        >>> from safegen._hasher import Job, submit
        >>> job = Job(len, [b"ab", b"abc"])
        >>> submit(job)
        >>> job.wait()
        [2, 3]
    """

    __slots__ = (
        "_claim",
        "_done",
        "_pid",
        "_taken",
        "digest",
        "digests",
        "error",
        "items",
        "seconds",
    )

    def __init__(self, digest: Callable[[Any], int], items: Sequence[Any]) -> None:
        self.digest = digest
        self.items = items
        self.digests: list[int] = []
        self.error: BaseException | None = None
        self.seconds = 0.0  # how long computing the digests took
        self._claim = threading.Lock()  # held by whoever runs the job
        self._taken = threading.Lock()  # released when someone has claimed the job
        self._taken.acquire()
        self._done = threading.Lock()  # released when the digests are ready
        self._done.acquire()
        self._pid = os.getpid()

    def run(self) -> None:
        """Compute the digests, unless another thread has taken the job."""
        if not self._claim.acquire(blocking=False):
            return
        self._taken.release()
        start = time.perf_counter()
        try:
            digest = self.digest
            self.digests = [digest(item) for item in self.items]
        except BaseException as error:  # raised again in the caller's thread by wait()
            self.error = error
        finally:
            self.seconds = time.perf_counter() - start
            self._done.release()

    def handed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a thread to take the job; whether one has.

        Letting the hashing thread take the GIL and start before the caller goes on
        matters when the caller's next steps hold the GIL (TensorFlow converting the
        batch to tensors does): the hash then runs beside them, not after them.
        """
        if self._taken.acquire(timeout=timeout):
            self._taken.release()
            return True
        return False

    def wait(self) -> list[int]:
        """The digests, once computed (here, if no thread has started on them).

        Raises:
            BaseException: whatever computing a digest raised, in this thread.
        """
        if self._pid != os.getpid():
            # Forked while in flight: the thread that may hold this job does not exist here.
            self._pid = os.getpid()
            self._claim = threading.Lock()
            self._taken = threading.Lock()
            self._taken.acquire()
            self._done = threading.Lock()
            self._done.acquire()
            self.error = None
        self.run()
        self._done.acquire()
        self._done.release()  # a second wait() returns at once
        if self.error is not None:
            raise self.error
        return self.digests


# The hashing thread ends after this long without a job (a new one starts on demand).
IDLE_SECONDS = 2.0

_lock = threading.Lock()
_queue: queue.SimpleQueue[Job] | None = None


def _serve(jobs: queue.SimpleQueue[Job]) -> None:
    """The hashing thread: run jobs as they come, end when idle (the thread is a daemon)."""
    global _queue
    while True:
        try:
            job = jobs.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with _lock:
                if jobs.empty():
                    if _queue is jobs:
                        _queue = None
                    # A job put here after this check is run by its waiter (Job.wait).
                    return
            continue
        job.run()
        del job  # let a finished job's arrays go before waiting for the next one


def submit(job: Job) -> None:
    """Queue ``job`` for the hashing thread, starting the thread on first use."""
    global _queue
    jobs = _queue
    if jobs is None:
        with _lock:
            jobs = _queue
            if jobs is None:
                jobs = queue.SimpleQueue()
                threading.Thread(
                    target=_serve, args=(jobs,), name="safegen-hasher", daemon=True
                ).start()
                _queue = jobs
    jobs.put(job)


def _after_fork_in_child() -> None:
    """The hashing thread did not survive the fork: start afresh on next use."""
    global _lock, _queue
    _lock = threading.Lock()
    _queue = None


os.register_at_fork(after_in_child=_after_fork_in_child)
