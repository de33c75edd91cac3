"""What each mode does to one yielded value: check, copy or freeze its arrays.

One object per guarded generator (or dataset) holds its state: :func:`make_state` makes
it for ``settings.mode``. One room per mode:

* :mod:`~safegen._modes.check`: check mode (:class:`Watch`) fingerprints every yielded
  array, re-checks at once those a new yield may share memory with (the address index
  of one memory owner, ``_Owner``), and reports an array that changed; it hashes large
  arrays on safegen's hashing thread (``BACKGROUND_ABOVE`` and the constants beside it);
* :mod:`~safegen._modes.copy`: copy mode (:class:`Copy`) hands the consumer copies, in
  memory of their own;
* :mod:`~safegen._modes.freeze`: freeze mode (:class:`Freeze`) makes every yielded array
  read-only, and notes on the ``ValueError`` of a write into one what safegen froze;

and what they share:

* :mod:`~safegen._modes._base`: :class:`_State`, what the guard calls on every mode
  (``process``, ``settle``, ``finish``, ``annotate``, the epoch-method hooks);
* :mod:`~safegen._modes.source`: :class:`Source`, the guarded generator's name and
  location in messages, and the lines of user code that reports point at.

Each guarded source's handle (``safegen._handle``, made by ``safegen._sources``) holds
its mode's state and calls it; nothing here imports the handle or the sources. Check
mode is split by job: ``_check_hashing`` (fingerprinting each yield), ``_check_index``
(the address index), ``_check_background`` (the hashing thread's scheduling) and
``_check_verify`` (re-verifications); ``_flat`` holds the usual batch's fast path, written
once for the three modes. Framework-free: nothing here imports Keras or TensorFlow.
"""

from __future__ import annotations

from safegen import _session
from safegen._config import Settings
from safegen._modes._base import _State
from safegen._modes.check import Watch
from safegen._modes.copy import Copy
from safegen._modes.freeze import Freeze
from safegen._modes.source import Source, relative_filename

__all__ = ["Copy", "Freeze", "Source", "Watch", "_State", "make_state", "relative_filename"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


def make_state(settings: Settings, source: Source, background: bool = False) -> _State:
    """The per-generator state for ``settings.mode`` (not ``"off"``).

    ``background``: the caller calls ``settle()`` before each resume of the generator, so
    check mode may hash large arrays on the hashing thread meanwhile.
    """
    kind = {"check": Watch, "copy": Copy, "freeze": Freeze}[settings.mode]
    state = kind(settings, source)
    _session.record_source(source.name, source.location, settings.mode, state.stats)
    if background and isinstance(state, Watch):
        state.background = True
    return state
