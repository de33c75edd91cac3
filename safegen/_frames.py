"""Which stack frames are safegen's own machinery, for warnings and notes."""

from __future__ import annotations

import os
import sys

__all__ = ["MACHINERY", "user_stacklevel"]

_DIR = os.path.dirname(os.path.abspath(__file__))

# The files whose frames stand between the user's code and a guarded generator.
MACHINERY = frozenset(
    os.path.join(_DIR, name)
    for name in ("_guard.py", "_modes.py", "_config.py", "_structure.py", "_dataset.py")
)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller point at the first
    frame outside safegen's machinery."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename in MACHINERY:
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
