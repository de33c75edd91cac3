"""Validation splits that lie: validation rows that are training rows, and a
``validation_split`` slice of one class.

Both are decided here from NumPy arrays alone; the call check that runs them at
``fit`` is ``safegen.integrations._splits``.

**Overlap** (:func:`overlap`): the keys of the (sampled, see
:mod:`~safegen._detectors.rows`) validation input rows that are also among the
training rows' keys. Real data holds a few duplicate rows (the same image uploaded
twice, a default record): a finding needs more than :data:`OVERLAP_SHARE` of the
validation rows *and* more than :data:`OVERLAP_ROWS` of them. Data whose rows are
themselves often duplicates (a few categorical features: the same row many times) puts
copies on both sides of any random split: the share of training rows that have a twin
among the training rows (``d``) says how much, and a finding then needs a share above
``OVERLAP_SHARE + 2 * d``, so that a random split of such data is silent while a
validation set cut from the training rows is not.

**One-class split** (:func:`one_class_split`): Keras's ``validation_split`` takes the
*last* rows, before any shuffling. When the labels are classes (:func:`class_labels`:
integer or boolean labels, 0/1 floats, or one-hot rows), the check asks whether classes
that a shuffled split would certainly put into the validation slice are missing from
it: a class is "certain" when the slice, drawn at random, would hold on average at least
:data:`EXPECTED_ROWS` of its rows (the chance that it holds none is then below
``exp(-10)``, 5e-5). A finding is a slice that misses such a class and holds one class
only, or misses at least half of the certain classes: rows sorted or grouped by class.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = [
    "EXPECTED_ROWS",
    "OVERLAP_ROWS",
    "OVERLAP_SHARE",
    "Overlap",
    "SplitClasses",
    "class_labels",
    "one_class_split",
    "overlap",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# A validation set that shares more than this share of its rows, and more than
# OVERLAP_ROWS rows, with the training set is a finding.
OVERLAP_SHARE = 0.05
OVERLAP_ROWS = 10
# A class whose rows a random validation slice would hold this many of on average.
EXPECTED_ROWS = 10
# Labels with more distinct values than this are not taken for classes.
MAX_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class Overlap:
    """Validation rows that are training rows.

    Attributes:
        shared: validation rows (of those compared) whose inputs are a training row's.
        compared: validation rows compared (hashed; all of them unless sampled).
        validation_rows: validation rows in all.
        training_rows: training rows read (their keys compared against).
        sampled: whether rows were sampled (large rows).
        duplicated: the share of the training rows (compared) that have a twin among
            them.
    """

    shared: int
    compared: int
    validation_rows: int
    training_rows: int
    sampled: bool
    duplicated: float = 0.0

    @property
    def share(self) -> float:
        return self.shared / self.compared if self.compared else 0.0

    @property
    def found(self) -> bool:
        """Whether it is more than the few duplicates real data has."""
        return self.share > OVERLAP_SHARE + 2 * self.duplicated and self.shared > OVERLAP_ROWS

    def message(self, where: str, training: str, validation: str) -> str:
        """The finding's message: ``where`` is the call, ``training`` and
        ``validation`` name the two sources."""
        counted = (
            f"{self.shared} of the {self.compared} validation rows sampled (of "
            f"{self.validation_rows}; large rows are sampled alike on both sides)"
            if self.sampled
            else f"{self.shared} of the {self.validation_rows} validation rows"
        )
        twins = (
            f", of which {self.duplicated:.0%} have a twin among themselves"
            if self.duplicated >= 0.01
            else ""
        )
        return (
            f"{where}: {counted} ({self.share:.0%}) are also training rows: their inputs "
            f"are identical, byte for byte, to inputs among the {self.training_rows} "
            f"training rows read{twins} (training data: {training}; validation data: "
            f"{validation}). "
            "The validation score then measures how well the network remembers rows it "
            "trained on, not how it generalizes. Likely causes: the data was augmented, "
            "oversampled or duplicated before it was split, or it holds duplicate "
            "records. Fix: split first, then augment or oversample the training part "
            "only; drop duplicate rows before splitting (np.unique(x, axis=0, "
            "return_index=True), or pandas' drop_duplicates)."
        )


def overlap(
    training: np.ndarray,
    validation: np.ndarray,
    *,
    validation_rows: int,
    training_rows: int,
    sampled: bool,
) -> Overlap:
    """Count the ``validation`` keys found among the ``training`` keys (both from
    :func:`safegen._detectors.rows.row_keys`)."""
    shared = int(np.isin(validation, training).sum()) if len(training) else 0
    duplicated = 0.0
    if len(training):
        _, inverse, counts = np.unique(training, return_inverse=True, return_counts=True)
        duplicated = float((counts[inverse] > 1).mean())
    return Overlap(shared, len(validation), validation_rows, training_rows, sampled, duplicated)


def class_labels(y: object) -> np.ndarray | None:
    """``y`` as one class id per row when it holds class labels, else ``None``.

    Class labels are: integer or boolean labels of shape ``(n,)`` or ``(n, 1)`` with at
    most :data:`MAX_CLASSES` values; floats of that shape that are all 0 or 1 (binary
    labels); or one-hot rows ``(n, k)``, ``k >= 2``, each holding a single 1 and zeros.
    Regression targets (other floats, several columns that are not one-hot) are not.
    """
    if not isinstance(y, np.ndarray) or y.ndim == 0 or y.shape[0] == 0:
        return None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    kind = y.dtype.kind
    if y.ndim == 1:
        if kind in "iub":
            labels = y.astype(np.int64, copy=False)
        elif kind == "f" and bool(np.isin(y, (0.0, 1.0)).all()):
            labels = y.astype(np.int64)
        else:
            return None
        if len(np.unique(labels)) > MAX_CLASSES:
            return None
        return labels
    if y.ndim == 2 and kind in "iubf" and y.shape[1] >= 2:
        ones = y == 1
        if bool((ones.sum(axis=1) == 1).all()) and bool(((y == 0) | ones).all()):
            ids: np.ndarray = np.argmax(ones, axis=1)
            return ids
    return None


@dataclasses.dataclass(frozen=True)
class SplitClasses:
    """The classes on each side of a ``validation_split``.

    Attributes:
        training: ``{class: rows}`` in the training part.
        validation: ``{class: rows}`` in the validation slice.
        missing: classes a random slice would certainly hold, absent from it.
        split: the fraction passed.
    """

    training: dict[int, int]
    validation: dict[int, int]
    missing: tuple[int, ...]
    split: float

    def message(self, where: str) -> str:
        rows = sum(self.validation.values())
        total = rows + sum(self.training.values())
        missing = _listed(dict.fromkeys(self.missing, 0), with_rows=False)
        return (
            f"{where}: the validation slice holds {len(self.validation)} class(es) "
            f"({_listed(self.validation)}), while the training rows hold "
            f"{len(self.training)} ({_listed(self.training)}); the validation slice "
            f"never holds class(es) {missing}, which a shuffled split would. Keras takes "
            f"validation_split={self.split:g} as the last {rows} of the {total} rows, "
            "before any shuffling, and these rows are sorted (or grouped) by class: the "
            "validation score measures a few classes, or classes the network never "
            "trained on. Fix: shuffle the rows before fit (p = np.random.permutation("
            "len(x)); x, y = x[p], y[p]), or pass validation_data made with sklearn's "
            f"train_test_split(x, y, test_size={self.split:g}, stratify=y)."
        )


def _listed(rows: dict[int, int], *, with_rows: bool = True, shown: int = 6) -> str:
    items = sorted(rows.items())
    out = [f"{c}: {n} rows" if with_rows else str(c) for c, n in items[:shown]]
    if len(items) > shown:
        out.append(f"... {len(items) - shown} more")
    return ", ".join(out)


def split_index(rows: int, fraction: float) -> int:
    """Where Keras cuts ``rows`` rows for ``validation_split=fraction`` (Keras 3's
    ``train_validation_split`` and tf_keras's: the floor of ``rows * (1 - fraction)``)."""
    return int(math.floor(rows * (1.0 - fraction)))


def one_class_split(labels: np.ndarray, fraction: float) -> SplitClasses | None:
    """The classes of each side when ``validation_split=fraction`` of ``labels`` (from
    :func:`class_labels`) is a finding (see the module's docstring), else ``None``."""
    cut = split_index(len(labels), fraction)
    if cut <= 0 or cut >= len(labels):
        return None
    classes, pooled = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        return None
    size = len(labels) - cut
    in_validation = dict(zip(*np.unique(labels[cut:], return_counts=True), strict=True))
    expected = size * pooled / len(labels)  # rows of each class in a random slice
    certain = [int(c) for c, e in zip(classes, expected, strict=True) if e >= EXPECTED_ROWS]
    missing = tuple(c for c in certain if c not in in_validation)
    if not missing or (len(in_validation) > 1 and 2 * len(missing) < len(certain)):
        return None
    in_training = dict(zip(*np.unique(labels[:cut], return_counts=True), strict=True))
    return SplitClasses(
        {int(c): int(n) for c, n in in_training.items()},
        {int(c): int(n) for c, n in in_validation.items()},
        missing,
        fraction,
    )
