"""Where things are: the guarded generator's name and location in messages, and the
lines of user code that reports and notes point at."""

from __future__ import annotations

import functools
import inspect
import linecache
import os
import sys
import warnings
from types import CodeType, TracebackType
from typing import Any

import numpy as np

from safegen._frames import MACHINERY, in_library, real_path, user_stacklevel

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


@functools.lru_cache(maxsize=256)
def def_line(code: CodeType) -> int:
    """The line of ``code``'s ``def`` (``co_firstlineno`` is its first decorator's)."""
    first = code.co_firstlineno
    for line in range(first, first + 64):
        text = linecache.getline(code.co_filename, line).lstrip()
        if not text:
            break
        if text.startswith(("def ", "async def ", "class ")):
            return line
        if not text.startswith("@") and line == first:
            break  # not a decorated definition (a lambda, a generator expression)
    return first


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


def warn_at_user(
    message: str, category: type[Warning], code: CodeType | None, *, whole_package: bool = False
) -> None:
    """Warn ``message`` at the caller's line, the first frame outside safegen's machinery
    (outside safegen, with ``whole_package``); when that caller is a framework's (Keras's
    data adapter, in a worker process), at the definition of ``code`` instead, which is
    the user's (a generator, a dataset's ``__getitem__``)."""
    level = user_stacklevel(whole_package=whole_package)
    caller = sys._getframe(level - 1).f_code.co_filename
    if code is not None and in_library(caller):
        warnings.warn_explicit(message, category, code.co_filename, def_line(code))
    else:
        warnings.warn(message, category, stacklevel=level)


def relative_filename(filename: str) -> str:
    """``filename`` relative to the working directory when it lies below it, with
    symbolic links resolved (an editable install's link tree names the source file)."""
    if not filename.startswith("<"):  # "<string>", "<stdin>": no file
        filename = real_path(filename)
    try:
        relative = os.path.relpath(filename)
        if not relative.startswith(".."):
            return relative
    except ValueError:
        pass
    return filename


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
        if filename not in MACHINERY and not filename.startswith(_LIBRARY_CODE):
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
