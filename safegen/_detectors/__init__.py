"""Detectors: one room per kind of silent data bug, beside the aliasing check.

The aliasing check lives in the modes (``safegen._modes``): it fingerprints every batch.
The detectors here read what that check already computed, and what a guarded dataset's
``__getitem__`` sees around each call, through one small interface
(:class:`safegen._detectors._base.Detector`):

* :mod:`~safegen._detectors.random_streams`: worker processes (or the worker pools of
  successive epochs) that start from one copied random state and draw the same
  "random" numbers; in copy mode, the reseeding of each worker's global states;
* :mod:`~safegen._detectors.repeated_batches`: a dataset that returns, within one epoch,
  the same batch for two different indices; a generator whose copies in two worker
  processes yield the same batch.

Datasets carry their channel in their ``__dict__`` and get their detectors from
:func:`dataset_detectors`. Guarded generators are listed by :func:`watch_generator`
(nothing more in the process that guarded them) and get both detectors in forked worker
processes only, where tf_keras runs a copy of the generator in each one
(:mod:`~safegen._detectors.generators`).

A detector produces findings and nothing else: each goes through the one path
(:func:`safegen._handling.report`) that the aliasing check's findings take too, which
counts it in the session and raises, warns or calls ``on_violation``. In a worker
process it is counted through the source's channel
(:mod:`~safegen._detectors._sink`), which carries what worker processes found back to
the parent's session. Framework-free: nothing here imports Keras or TensorFlow.
"""

from __future__ import annotations

from typing import Any

from safegen._config import Settings
from safegen._detectors._base import Detector
from safegen._detectors._sink import CHANNEL_ATTRIBUTE, Channel, open_channel
from safegen._detectors.findings import note_reseeded
from safegen._detectors.findings import record as record_findings
from safegen._detectors.generators import watch as watch_generator

# Imported here, not on first use: a worker process forked while another thread of the
# parent was importing them would wait forever for the import lock it inherited.
from safegen._detectors.random_streams import stream_detectors
from safegen._detectors.repeated_batches import RepeatedBatches

__all__ = [
    "CHANNEL_ATTRIBUTE",
    "Detector",
    "dataset_detectors",
    "epoch_passed",
    "open_dataset",
    "watch_generator",
]


def open_dataset(dataset: Any, settings: Settings, name: str, location: str) -> None:
    """Called where a dataset instance is guarded (in the process that owns it)."""
    if settings.mode != "off":
        record_findings(open_channel(dataset, name, location), settings.mode)


def dataset_detectors(dataset: Any, settings: Settings, state: Any) -> tuple[Detector, ...]:
    """The detectors for one guarded dataset in this process (made on its first use here)."""
    channel: Channel | None = dataset.__dict__.get(CHANNEL_ATTRIBUTE)
    if channel is None:
        return ()
    found: list[Detector] = list(stream_detectors(dataset, settings, channel))
    note_reseeded(channel, settings.mode)
    if settings.mode == "check":
        found.append(RepeatedBatches(settings, channel))
    return tuple(found)


def epoch_passed(dataset: Any, detectors: tuple[Detector, ...], method: str) -> None:
    """A dataset's ``on_epoch_begin`` or ``on_epoch_end`` (``method``) ran, in the owning
    process.

    Only ``on_epoch_end`` advances the channel's epoch: Keras 3 starts the next epoch's
    worker pool after it returns, while its ``on_epoch_begin`` may run as that pool's
    workers are being forked (tf_keras calls ``on_epoch_end`` between two pools too).
    """
    channel: Channel | None = dataset.__dict__.get(CHANNEL_ATTRIBUTE)
    if channel is not None and method == "on_epoch_end":
        channel.epoch += 1
    for detector in detectors:
        detector.epoch_passed()
