"""Which stack frames are safegen's own machinery, for warnings, notes and tracebacks."""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType
from typing import Any

__all__ = [
    "LIBRARIES",
    "MACHINERY",
    "format_without_safegen",
    "hide_safegen_frames",
    "in_library",
    "user_stacklevel",
]

_DIR = os.path.dirname(os.path.abspath(__file__))

# The files whose frames stand between the user's code and a guarded generator, with every
# module of the modes package (tests/test_package.py checks that none is left out).
_FILES = ("_guard.py", "_handle.py", "_config.py", "_structure.py", "_copying.py")
# Every module of these packages (the source kinds and the modes).
_PACKAGES = ("_sources", "_modes")
MACHINERY = frozenset(
    [os.path.join(_DIR, name) for name in _FILES]
    + [
        os.path.join(_DIR, package, name)
        for package in _PACKAGES
        for name in sorted(os.listdir(os.path.join(_DIR, package)))
        if name.endswith(".py")
    ]
)


# What an installed package's (a framework's) file name contains: not the user's code.
LIBRARIES = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def in_library(filename: str) -> bool:
    """Whether ``filename`` is an installed package's (a framework's), not the user's."""
    return any(part in filename for part in LIBRARIES)


_PACKAGE = _DIR + os.sep


def user_stacklevel(*, whole_package: bool = False) -> int:
    """The ``stacklevel`` that makes a warning issued by the caller point at the first
    frame outside safegen's machinery (with ``whole_package``, outside any module of
    safegen's: the detectors are called from the machinery)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE)
        if whole_package
        else frame.f_code.co_filename in MACHINERY
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _is_safegen_file(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE)


def format_without_safegen(
    error: BaseException, tb: TracebackType | None = None, *, keep_tb: bool = False
) -> str:
    """``error``'s traceback as Python prints it, without safegen's own frames (as pytest
    hides them): they are not where the bug is. A traceback of safegen's frames only is
    printed whole. ``tb`` replaces the error's own traceback when ``keep_tb`` is set."""
    report = traceback.TracebackException(
        type(error), error, tb if keep_tb else error.__traceback__
    )
    seen: set[int] = set()
    pending = [report]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        kept = [frame for frame in current.stack if not _is_safegen_file(frame.filename)]
        if kept:  # never hide every frame
            current.stack = traceback.StackSummary.from_list(kept)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return "".join(report.format())


def _excepthook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
    sys.stderr.write(format_without_safegen(error, tb, keep_tb=True))
    sys.stderr.flush()


def hide_safegen_frames() -> None:
    """Print uncaught exceptions without safegen's frames, in a plain ``python script.py``
    too: called when safegen raises. Leaves a program's (or IPython's) own hook alone."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
