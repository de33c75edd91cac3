"""Where the user's code is: the one way to find the user's frame, and tracebacks
without safegen's own frames.

A frame is safegen's when its module is ``safegen`` or below it (its ``__name__``, as
typeguard's ``get_stacklevel`` decides); a file is an installed package's (a
framework's, pytest's) when it lies in one of the interpreter's package folders, by their
real locations. Every warning and message that points at the user's line asks
:func:`user_stacklevel`, :func:`user_frame` or :func:`warn_at_user`.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from types import CodeType, FrameType, TracebackType
from typing import Any

__all__ = [
    "callers",
    "def_line",
    "format_without_safegen",
    "hide_safegen_frames",
    "in_library",
    "in_package",
    "is_safegen",
    "real_path",
    "relative_filename",
    "user_frame",
    "user_line",
    "user_stacklevel",
    "warn_at_user",
]


def is_safegen(frame: FrameType) -> bool:
    """Whether ``frame`` runs code of a module of safegen's."""
    name = frame.f_globals.get("__name__") or ""
    return name == "safegen" or name.startswith("safegen.")


def _hidden(frame: FrameType) -> bool:
    """A frame of the import system's bootstrap, which ``warnings`` neither shows nor
    counts in ``stacklevel``."""
    filename = frame.f_code.co_filename
    return "importlib" in filename and "_bootstrap" in filename


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple[str, ...]:
    """The real locations of the interpreter's package folders (site-packages)."""
    import site
    import sysconfig

    folders = {sysconfig.get_paths().get(key, "") for key in ("purelib", "platlib")}
    try:
        folders.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - a virtualenv's old site module
        pass
    if site.ENABLE_USER_SITE:
        folders.add(site.getusersitepackages())
    # A virtual environment's base interpreter's folders (--system-site-packages).
    folders.update(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages"))
    return tuple(os.path.join(os.path.realpath(folder), "") for folder in sorted(folders) if folder)


# What a file installed by a package manager has in its path, wherever the interpreter is.
_INSTALLED = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


@functools.lru_cache(maxsize=4096)
def real_path(filename: str) -> str:
    """``filename`` absolute, with symbolic links resolved: an editable install's link
    tree (``build/__editable__.../safegen/x.py``) becomes the source file it points to."""
    return os.path.realpath(filename)


# The frameworks whose files are never the user's code, wherever they were loaded from.
FRAMEWORKS = ("keras", "tf_keras", "tensorflow")
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


def in_package(filename: str, names: tuple[str, ...] = FRAMEWORKS) -> bool:
    """Whether ``filename`` is a file of one of the packages ``names`` (by default Keras,
    tf_keras and TensorFlow), decided from where each was really loaded from, not from
    folder names."""
    real = real_path(filename)
    return any(real.startswith(_dirs_of(name)) for name in names)


@functools.lru_cache(maxsize=1024)
def in_library(filename: str) -> bool:
    """Whether ``filename`` is an installed package's (a framework's), not the user's:
    decided from where packages are installed (the interpreter's package folders, by
    their real locations, and any ``site-packages`` folder), never from the names of the
    packages' own folders (a user's project may be a folder named ``keras`` or
    ``safegen``)."""
    return (
        real_path(filename).startswith(_library_folders())
        or any(part in filename for part in _INSTALLED)
        or in_package(filename)
    )


def frames(start: FrameType | None) -> Iterator[FrameType]:
    """``start`` and the frames that called it, innermost first."""
    while start is not None:
        yield start
        start = start.f_back


def callers(depth: int = 1) -> Iterator[FrameType]:
    """The frames that called the caller, from ``depth`` up (1: the caller's caller)."""
    return frames(sys._getframe(depth + 1))


def _machinery(frame: FrameType) -> bool:
    """A frame of safegen's, of the import system's or of ``contextlib``'s (what stands
    between a ``with safegen.enabled():`` or an ``import keras`` and the user's line)."""
    name = frame.f_globals.get("__name__") or ""
    return (
        name == "safegen"
        or name.startswith(("safegen.", "importlib", "_frozen_importlib"))
        or name == "contextlib"
        or _hidden(frame)
    )


def user_frame(up: int = 1, *, libraries: bool = False) -> tuple[int, FrameType | None]:
    """The first frame outside safegen (and the import system, and ``contextlib``), and
    the ``stacklevel`` that points a warning at it.

    ``up`` is the frame that calls ``warnings.warn`` (``stacklevel=1``), counted from the
    caller of this function (1: that caller itself). With ``libraries``, installed
    packages' frames are passed too (a framework importing another), unless only they
    are left: then the first of them. Returns ``(stacklevel, frame)``; the frame is
    ``None`` when there is none.
    """
    level = 1
    first: tuple[int, FrameType] | None = None
    for index, frame in enumerate(frames(sys._getframe(up))):
        hidden = _hidden(frame)
        if index and not hidden:
            level += 1  # as warnings counts: the bootstrap's frames are not counted
        if hidden or _machinery(frame):
            continue
        if libraries and in_library(frame.f_code.co_filename):
            first = first or (level, frame)
            continue
        return level, frame
    return first if first is not None else (level, None)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller point at the first
    frame outside safegen."""
    return user_frame(2)[0]


def warn_at_user(message: str, category: type[Warning], code: CodeType | None = None) -> None:
    """Warn ``message`` at the user's line, the first frame outside safegen; when that
    caller is an installed package's (Keras's data adapter, in a worker process), at the
    definition of ``code`` instead, which is the user's (a generator, a dataset's
    ``__getitem__``). Without ``code``, past installed packages' frames to the user's
    line that called them (a ``for`` over a PyTorch ``DataLoader``), if there is one."""
    level, frame = user_frame(1, libraries=code is None)
    if code is not None and (frame is None or in_library(frame.f_code.co_filename)):
        warnings.warn_explicit(message, category, code.co_filename, def_line(code))
    else:
        warnings.warn(message, category, stacklevel=level)


def user_line() -> str:
    """``"file.py:12"``: the innermost caller outside safegen and installed packages
    (the user's line that made a layer checked, say), or ``""``."""
    for frame in frames(sys._getframe(1)):
        if not _machinery(frame) and not in_library(frame.f_code.co_filename):
            return f"{relative_filename(frame.f_code.co_filename)}:{frame.f_lineno}"
    return ""


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


# -- Tracebacks without safegen's frames ---------------------------------------------------

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


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


def excepthook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
    """``sys.excepthook`` while safegen's errors are about: prints without its frames."""
    sys.stderr.write(format_without_safegen(error, tb, keep_tb=True))
    sys.stderr.flush()


def hide_safegen_frames() -> None:
    """Print uncaught exceptions without safegen's frames, in a plain ``python script.py``
    too: called when safegen raises. Leaves a program's (or IPython's) own hook alone."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = excepthook
