"""Where detectors leave what they saw, so that the parent process can read it.

Worker processes (``use_multiprocessing=True``) have their own copy of safegen's state:
what they count never reaches the parent's session. Each guarded dataset instance
therefore has a :class:`Channel` on its handle, which it carries in its ``__dict__`` (so
it reaches a worker by ``fork`` and by pickling alike): the parent's pid, a directory of
its own, and an epoch counter the parent advances. Workers write small JSON files there,
each with an atomic ``os.replace``, so that a reader sees a whole file or none; the
parent reads them when its session is summarized. The directories live under one
temporary folder per parent process, removed at the parent's exit.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import threading
from types import CodeType
from typing import Any

from safegen._finding import Finding
from safegen._handling import Handling

__all__ = ["Channel", "read_files", "write_file"]

_lock = threading.Lock()
_root: tuple[int, str] | None = None  # (pid, folder) of this process's temporary folder
_numbers = itertools.count()


def _remove(pid: int, folder: str) -> None:
    if os.getpid() == pid:  # never from a forked child that exits normally
        shutil.rmtree(folder, ignore_errors=True)


def _root_folder() -> str:
    global _root
    with _lock:
        if _root is None or _root[0] != os.getpid():
            folder = tempfile.mkdtemp(prefix="safegen-")
            _root = (os.getpid(), folder)
            atexit.register(_remove, *_root)
        return _root[1]


class Channel:
    """What a guarded dataset instance carries into worker processes (pickles small)."""

    __slots__ = ("epoch", "folder", "home", "location", "name")

    # A dataset's batches have an index; a generator's (GeneratorChannel) do not.
    indexed = True
    unit = "batches"  # what the random-stream report counts
    hint = ""  # advice added to the reports, where the source is a generator

    def __init__(self, name: str, location: str) -> None:
        self.home = os.getpid()
        self.folder = os.path.join(_root_folder(), str(next(_numbers)))
        self.name = name
        self.location = location
        self.epoch = 0  # advanced by the parent at each epoch method

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.home, self.folder, self.name, self.location, self.epoch)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.home, self.folder, self.name, self.location, self.epoch = state

    @property
    def in_worker(self) -> bool:
        """Whether this process is not the one that guarded the dataset."""
        return os.getpid() != self.home

    def handling(self, on_violation: Any, code: CodeType | None) -> Handling:
        """How a detector's findings on this source are handled in this process: counted
        in the session here, and in a worker process written for the parent's session
        (read when it is summarized)."""
        return Handling(on_violation, code, record=self.record if self.in_worker else None)

    def note(self, kind: str, message: str) -> None:
        """Say ``message`` in the parent's summary, under this source, counted as no
        finding (what copy mode did in a worker process, say); from a worker process."""
        entry = {"kind": kind, "message": message}
        write_file(self.folder, f"note-{os.getpid()}-{kind}", entry)

    def record(self, finding: Finding) -> None:
        """Keep ``finding`` for the parent's session (a worker process's file)."""
        entry = {"kind": finding.kind.key, "message": finding.message}
        write_file(self.folder, f"report-{os.getpid()}-{next(_numbers)}", entry)

    def claim(self, key: str) -> bool:
        """Whether this process is the first, among the owner and its worker processes,
        to claim ``key`` (for a warning each of them would otherwise print)."""
        os.makedirs(self.folder, exist_ok=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        try:
            os.close(os.open(os.path.join(self.folder, f"claim-{digest}"), _CLAIM_FLAGS))
        except FileExistsError:
            return False
        return True


_CLAIM_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY


def write_file(folder: str, name: str, content: Any) -> None:
    """Write ``folder/name.json`` atomically (a reader sees all of it or nothing)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + ".json")
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(content, file)
    os.replace(temporary, path)


def read_files(folder: str, prefix: str) -> list[Any]:
    """The content of every ``prefix*.json`` file in ``folder`` (none if it is missing)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith(prefix) and name.endswith(".json"):
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as file:
                    out.append(json.load(file))
            except (OSError, ValueError):  # removed meanwhile
                continue
    return out
