"""What the torch integrations that patch torch's classes share: which objects they
watch, with which settings, and their patches' life.

An object (a ``DataLoader``, a ``DistributedSampler``) is watched with the settings of
``safegen.enable()`` while it is on, or with its own when ``watch()`` was called for it;
``enable()`` installs the patches and ``disable()`` undoes them, unless a ``watch()``
made them permanent (its object must stay watched after ``disable()``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from safegen import _enable
from safegen._config import Settings

__all__ = ["Watched"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class Watched:
    """The watched objects of one integration, and its patches.

    Attributes:
        lock: serializes the integration's bookkeeping (reentrant).
    """

    def __init__(self, install: Callable[[], None], uninstall: Callable[[], None]) -> None:
        self.lock = threading.RLock()
        self._install = install
        self._uninstall = uninstall
        self._permanent = False
        # Objects watched explicitly, with their settings.
        self._explicit: weakref.WeakKeyDictionary[Any, Settings] = weakref.WeakKeyDictionary()

    def install(self) -> Callable[[], None]:
        """Install the patches (``enable()``); returns the function that undoes them,
        unless ``watch()`` made them permanent meanwhile."""
        with self.lock:
            if self._permanent:
                return lambda: None
            self._install()

        def undo() -> None:
            with self.lock:
                if not self._permanent:
                    self._uninstall()

        return undo

    def watch(self, obj: Any, settings: Settings) -> bool:
        """Watch ``obj`` with ``settings``, enabled or not (the patches stay for good);
        ``False`` in mode ``"off"``, where nothing is watched."""
        if settings.mode == "off":
            return False
        with self.lock:
            if not self._permanent:
                self._uninstall()
                self._install()
                self._permanent = True
            self._explicit[obj] = settings
        return True

    def release(self) -> None:
        """Undo the patches a ``watch()`` made permanent, and forget the objects watched
        explicitly (a test's clean-up)."""
        with self.lock:
            if self._permanent:
                self._uninstall()
                self._permanent = False
            self._explicit.clear()

    def settings(self, obj: Any) -> Settings | None:
        """The settings ``obj`` is watched with now, or ``None``."""
        explicit = self._explicit.get(obj)
        if explicit is not None:
            return explicit
        enabled = _enable.options()
        if enabled is None:
            return None
        try:
            settings = enabled.options.resolve()
        except ValueError:  # an invalid environment variable: reported where it is used
            return None
        return None if settings.mode == "off" else settings
