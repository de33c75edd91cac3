"""Where things are: the guarded generator's name and location in messages, and the
lines of user code that reports and notes point at."""

from __future__ import annotations

import inspect
import os
from types import CodeType, TracebackType
from typing import Any

import numpy as np

from safegen._frames import def_line, is_safegen, relative_filename, warn_at_user

__all__ = [
    "Source",
    "current_line",
    "def_line",
    "getitem_code",
    "relative_filename",
    "warn_at_user",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class Source:
    """Names the guarded generator in messages: ``batches()`` and ``data.py:12``.

    ``kind`` is ``"yield"`` for generators and iterators, ``"batch"`` for datasets.
    """

    __slots__ = ("code", "kind", "made_by", "name")

    def __init__(
        self, name: str, code: CodeType | None, kind: str = "yield", made_by: str = ""
    ) -> None:
        self.name = name
        self.code = code
        self.kind = kind
        # The factory that returned the generator, with its location, if not the same.
        self.made_by = made_by

    @property
    def location(self) -> str:
        if self.code is None:
            return ""
        return f"{relative_filename(self.code.co_filename)}:{def_line(self.code)}"

    def where(self) -> str:
        location = self.location
        where = f"{self.name} at {location}" if location else self.name
        return f"{where} (returned by {self.made_by})" if self.made_by else where


def getitem_code(cls: Any) -> CodeType | None:
    """The code of the dataset class ``cls``'s own ``__getitem__``, under every guard
    wrapped around it (a class guarded twice), or ``None``."""
    getitem = getattr(cls, "__getitem__", None)
    try:
        getitem = inspect.unwrap(getitem) if getitem is not None else None
    except ValueError:  # a cycle of __wrapped__
        pass
    code = getattr(getitem, "__code__", None)
    return code if isinstance(code, CodeType) else None


def current_line(producer: Any) -> str:
    """``"file.py:9"``: where a suspended generator (or async generator) stands, or ``""``."""
    frame = getattr(producer, "gi_frame", None) or getattr(producer, "ag_frame", None)
    if frame is None:
        return ""
    return f"{relative_filename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _write_line(tb: TracebackType | None) -> str:
    """``"file.py:44"``: the innermost line of the traceback in the user's code (not
    safegen's, not NumPy's), where a write into a read-only array failed."""
    found = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not is_safegen(tb.tb_frame) and not filename.startswith(_LIBRARY_CODE):
            found = f"{relative_filename(filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


# NumPy's own frames (Python files, and Cython ones named ``numpy/...pyx``).
_LIBRARY_CODE = (os.path.dirname(np.__file__), "numpy" + os.sep)


def _worker_process_name() -> str:
    """The current process's name if it is not the main process, else ``""``."""
    import multiprocessing

    process = multiprocessing.current_process()
    return "" if multiprocessing.parent_process() is None else process.name
