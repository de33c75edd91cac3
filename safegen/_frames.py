"""Which stack frames are safegen's own machinery, for warnings, notes and tracebacks."""

from __future__ import annotations

import functools
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
    "in_package",
    "real_path",
    "user_stacklevel",
]

_DIR = os.path.dirname(os.path.abspath(__file__))

# The files whose frames stand between the user's code and a guarded generator, with every
# module of the modes package (tests/test_package.py checks that none is left out).
_FILES = ("_guard.py", "_config.py", "_structure.py", "_copying.py", "_dataset.py")
_MODES = ("__init__.py", "_base.py", "check.py", "copy.py", "freeze.py", "source.py")
MACHINERY = frozenset(
    [os.path.join(_DIR, name) for name in _FILES]
    + [os.path.join(_DIR, "_modes", name) for name in _MODES]
)


# What an installed package's (a framework's) file name contains: not the user's code.
LIBRARIES = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def in_library(filename: str) -> bool:
    """Whether ``filename`` is an installed package's (a framework's), not the user's."""
    return any(part in filename for part in LIBRARIES) or in_package(filename, FRAMEWORKS)


# The packages whose frames are never the user's code: safegen and the frameworks.
FRAMEWORKS = ("keras", "tf_keras", "tensorflow")
PACKAGES = ("safegen", *FRAMEWORKS)


@functools.lru_cache(maxsize=4096)
def real_path(filename: str) -> str:
    """``filename`` absolute, with symbolic links resolved: an editable install's link
    tree (``build/__editable__.../safegen/x.py``) becomes the source file it points to."""
    return os.path.realpath(filename)


_package_dirs: dict[str, tuple[str, ...]] = {}


def _dirs_of(name: str) -> tuple[str, ...]:
    """The folders package ``name`` is loaded from (its ``__path__``, resolved), each
    ending in a separator; none while it is not imported (it is never imported here)."""
    found = _package_dirs.get(name)
    if found is None:
        module = sys.modules.get(name)
        if module is None:
            return ()
        paths = list(getattr(module, "__path__", None) or ())
        found = tuple(os.path.join(real_path(path), "") for path in paths if path)
        _package_dirs[name] = found
    return found


def in_package(filename: str, names: tuple[str, ...] = PACKAGES) -> bool:
    """Whether ``filename`` is a file of one of the packages ``names`` (by default safegen,
    Keras, tf_keras and TensorFlow), decided from where each package was really loaded
    from, not from folder names: a user's project in a folder named ``safegen`` or
    ``keras`` (a ``git clone`` of safegen, say) is the user's code."""
    real = real_path(filename)
    return any(real.startswith(_dirs_of(name)) for name in names)


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
