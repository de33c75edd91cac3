"""Check mode's address index: which watched arrays a new yield may share memory with.

A watched array's record is a list (for speed on the per-yield path) whose fields are
named below. The records of one memory owner are kept in a list while there are few
(scanned in full), and in an :class:`_Owner` index by address beyond ``SCAN_UP_TO`` (many
row views of one array, see benchmarks/many_leaves.py). :class:`AddressIndex` holds them
all, by owner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from safegen._address import ADDRESS_OFFSET as _ADDRESS_OFFSET
from safegen._address import extent
from safegen._address import read_address as _read_address
from safegen._fingerprint import fingerprint

__all__ = ["ARRAY", "AddressIndex", "FULL", "Record"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

Record = list  # a watched array's record: the fields below
# Fields of a watched array's record.
ARRAY, KEY, PATH, DIGEST, YIELD, SEEN, SAMPLE, BOUNDS, DEAD = range(9)
# The record's SAMPLE says how to re-verify it when its yield leaves the window: None,
# hashed in place (hash_buffer); FULL, through fingerprint(); a list, by sampled blocks.
FULL: Any = ()

# Up to this many watched records of one memory owner are kept in a list and scanned for
# overlaps; beyond it, in an _Owner index.
SCAN_UP_TO = 16
_NONE: list[list[Any]] = []  # an empty cell (never modified)
# A lookup that would visit more cells of an owner's index than this visits every record
# instead.
_MAX_CELLS = 64

# Called with a watched record found changed, the yield number, and whether the change is
# pinned on the generator.
Changed = Callable[[list[Any], int, bool], None]


class _Owner:
    """The watched records of one memory owner, indexed by address.

    The owner's address space is cut into cells of ``2 ** shift`` bytes, at least the
    widest record when the index is made. A record is filed under the cell of its first
    byte, or among the ``wide`` ones if it is wider than a cell (the whole array next to
    its row views). A record that overlaps a byte range ``[low, high)`` then starts in
    one of the cells from ``low - cell + 1`` to ``high - 1``: finding them, filing a
    record and removing one cost a few dictionary operations, whatever the number of
    records, so a yield of N row views of one array costs O(N), where scanning every
    record cost O(N * window).
    """

    __slots__ = ("cells", "shift", "size", "wide")

    def __init__(self, records: list[list[Any]]) -> None:
        self.cells: dict[int, list[list[Any]]] = {}
        self.wide: list[list[Any]] = []
        self.size = 0
        widest = 64
        for record in records:
            if record[BOUNDS] is None:
                record[BOUNDS] = extent(record[ARRAY])
            low, high = record[BOUNDS]
            widest = max(widest, high - low)
        self.shift = (widest - 1).bit_length()
        for record in records:
            self._file(record)

    def _file(self, record: list[Any]) -> None:
        low, high = record[BOUNDS]
        self.size += 1
        if high - low > 1 << self.shift:
            self.wide.append(record)
        else:
            self.cells.setdefault(low >> self.shift, []).append(record)

    def __len__(self) -> int:
        return self.size

    def check_in(self, record: list[Any]) -> list[list[Any]]:
        """File ``record``; return the records filed before it that may overlap it (a
        superset of those that do)."""
        array = record[ARRAY]
        if _read_address is not None and array.flags.c_contiguous:
            low = _read_address(id(array) + _ADDRESS_OFFSET).value or 0
            high = low + array.nbytes
            record[BOUNDS] = low, high
        else:
            low, high = record[BOUNDS] = extent(array)
        shift = self.shift
        cells = self.cells
        first = (low - (1 << shift) + 1) >> shift
        last = max(low, high - 1) >> shift
        if last - first > _MAX_CELLS:
            before = [other for filed in cells.values() for other in filed]
        elif last == first + 1:  # the usual case: the cell before the record's, and its own
            get = cells.get
            before = get(first, _NONE) + get(last, _NONE)
        else:
            before = []
            for cell in range(first, last + 1):
                before += cells.get(cell, _NONE)
        if self.wide:
            before += self.wide
        self.size += 1
        if high - low > 1 << shift:
            self.wide.append(record)
        else:
            cells.setdefault(low >> shift, []).append(record)
        return before

    def remove(self, record: list[Any]) -> None:
        low, high = record[BOUNDS]
        self.size -= 1
        if high - low > 1 << self.shift:
            _remove_identical(self.wide, record)
            return
        cell = low >> self.shift
        filed = self.cells[cell]
        if len(filed) == 1:
            del self.cells[cell]
        else:
            _remove_identical(filed, record)


def _remove_identical(records: list[list[Any]], record: list[Any]) -> None:
    """Remove ``record`` itself (not an equal one) from ``records``."""
    for i, other in enumerate(records):
        if other is record:
            del records[i]
            return


class AddressIndex(dict):  # type: ignore[type-arg]
    """The watched records by memory owner: ``{owner key: list of records or _Owner}``."""

    __slots__ = ()

    def recheck(
        self, key: Any, same_root: Any, new: list[Any], count: int, changed: Changed
    ) -> int:
        """Re-hash the watched arrays that may share memory with ``new``, then watch it;
        returns the bytes hashed.

        ``same_root`` holds the watched records of ``new``'s memory owner: a list while
        there are few (scanned in full), an :class:`_Owner` index by address beyond
        ``SCAN_UP_TO`` (which finds the overlapping ones without a scan).
        """
        if type(same_root) is not list:
            # Usually the only candidates are neighbours from this very yield.
            candidates = same_root.check_in(new)
            for old in candidates:
                if old[YIELD] != count:
                    return _rehash(candidates, new, count, changed)
            return 0
        hashed = _rehash(same_root, new, count, changed)
        if len(same_root) < SCAN_UP_TO:
            same_root.append(new)
        else:
            self[key] = _Owner([*same_root, new])
        return hashed

    def forget(self, record: list[Any]) -> None:
        """Stop watching ``record``."""
        key = record[KEY]
        same_root = self[key]
        if type(same_root) is list:
            if len(same_root) == 1 and same_root[0] is record:  # the usual case
                del self[key]
                return
            for i, other in enumerate(same_root):
                if other is record:
                    del same_root[i]
                    break
        else:
            same_root.remove(record)
        if not same_root:
            del self[key]

    def same_owner_since(self, record: list[Any]) -> int:
        """The latest yield after ``record``'s last check that handed out another view of
        its memory owner, or 0."""
        same_root = self.get(record[KEY])
        if same_root is None:
            return 0
        if isinstance(same_root, _Owner):
            others: Any = [r for filed in same_root.cells.values() for r in filed]
            others += same_root.wide
        else:
            others = same_root
        seen = record[SEEN]
        return max((r[YIELD] for r in others if r[YIELD] > seen), default=0)


def _rehash(candidates: list[list[Any]], new: list[Any], count: int, changed: Changed) -> int:
    """Re-hash those of ``candidates`` that overlap ``new``; returns the bytes hashed."""
    hashed = 0
    array = new[ARRAY]
    for old in candidates:
        # Skip records of this yield, and those already re-checked during it (the
        # generator is suspended: nothing of its own can have changed them since).
        if old[DEAD] or old[YIELD] == count or old[SEEN] == count:
            continue
        if old[ARRAY] is array:
            current = new[DIGEST]
        else:
            if old[BOUNDS] is None:
                old[BOUNDS] = extent(old[ARRAY])
            if new[BOUNDS] is None:
                new[BOUNDS] = extent(array)
            if old[BOUNDS][1] <= new[BOUNDS][0] or new[BOUNDS][1] <= old[BOUNDS][0]:
                continue
            current, size = fingerprint(old[ARRAY])
            hashed += size
        if current != old[DIGEST]:
            changed(old, count, True)
        else:
            old[SEEN] = count
    return hashed
