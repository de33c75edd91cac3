"""Detectors: one room per kind of silent data bug, beside the aliasing check.

The aliasing check lives in the modes (``safegen._modes``): it fingerprints every batch.
The detectors here read what that check already computed, and what a guarded dataset's
``__getitem__`` sees around each call, through one small interface
(:class:`safegen._detectors._base.Detector`):

* :mod:`~safegen._detectors.random_streams`: worker processes (or the worker pools of
  successive epochs) that start from one copied random state and draw the same
  "random" numbers (the report and the comparison; the detectors in each worker, and
  copy mode's reseeding of its global states, in
  :mod:`~safegen._detectors.random_workers`; the random states a source can reach, in
  :mod:`~safegen._detectors.random_states`);
* :mod:`~safegen._detectors.repeated_batches`: a dataset that returns, within one epoch,
  the same batch for two different indices; a generator whose copies in two worker
  processes yield the same batch;
* :mod:`~safegen._detectors.logits`: a loss expecting probabilities given logits, or the
  reverse, judged on a model's outputs (its call check is
  :mod:`safegen.integrations._logits`).
* :mod:`~safegen._detectors.pairing`: inputs shuffled apart from their targets (an input
  row met again in a later epoch with another target row); on a generator, the fit
  call check taps it (:class:`~safegen._detectors.rows.Tap`).

:mod:`~safegen._detectors.rows` keys the rows of a batch (and collects them for the
validation overlap check, :mod:`~safegen._detectors.splits`).

A source's handle (``safegen._handle``) carries its channel: a dataset's handle opens
one when it is guarded (:func:`open_dataset`) and gets its detectors from
:func:`dataset_detectors`; a guarded generator's handle opens one at a fork, and gets
both detectors in forked worker processes only, where tf_keras runs a copy of the
generator in each one (:mod:`~safegen._detectors.generators`). Detectors read the source
through the handle's methods (``last_batch``, ``settle``).

A detector produces findings and nothing else: each goes through the one path
(:func:`safegen._handling.report`) that the aliasing check's findings take too, which
counts it in the session and raises, warns or calls ``on_violation``. In a worker
process it is counted through the source's channel
(:mod:`~safegen._detectors._sink`), which carries what worker processes found back to
the parent's session. Framework-free: nothing here imports Keras or TensorFlow.
"""

from __future__ import annotations

from typing import Any

from safegen._detectors._base import Detector, definition
from safegen._detectors._sink import Channel
from safegen._detectors.findings import note_reseeded
from safegen._detectors.findings import record as record_findings

# Imported here, not on first use: a worker process forked while another thread of the
# parent was importing them would wait forever for the import lock it inherited.
from safegen._detectors.generators import Watcher
from safegen._detectors.pairing import Pairing
from safegen._detectors.random_workers import stream_detectors
from safegen._detectors.repeated_batches import RepeatedBatches
from safegen._finding import Finding
from safegen._handling import report

__all__ = ["Detector", "Watcher", "dataset_detectors", "epoch_passed", "open_dataset"]


def open_dataset(name: str, location: str, mode: str) -> Channel | None:
    """The channel of a dataset instance guarded in ``mode`` (in the process that owns
    it), listed in the session summary; ``None`` in mode ``"off"``."""
    if mode == "off":
        return None
    channel = Channel(name, location)
    record_findings(channel, mode)
    return channel


def dataset_detectors(handle: Any, dataset: Any) -> tuple[Detector, ...]:
    """The detectors for one guarded dataset in this process (made on its first use here)."""
    channel: Channel | None = handle.channel
    if channel is None:
        return ()
    settings = handle.settings
    found: list[Detector] = list(stream_detectors(dataset, settings, channel))
    note_reseeded(channel, settings.mode)
    if settings.mode == "check":
        found.append(RepeatedBatches(settings, channel))
    if not channel.in_worker:  # a worker process sees one epoch (a new pool each epoch)
        found.append(_pairing(channel, settings, dataset))
    return tuple(found)


def _pairing(channel: Channel, settings: Any, dataset: Any) -> Pairing:
    handling = channel.handling(settings.on_violation, definition(dataset))

    def emit(finding: Finding) -> None:
        report(finding, handling)

    return Pairing(channel.name, channel.location, emit, epoch=lambda: channel.epoch + 1)


def epoch_passed(handle: Any, method: str) -> None:
    """A dataset's ``on_epoch_begin`` or ``on_epoch_end`` (``method``) ran, in the owning
    process.

    Only ``on_epoch_end`` advances the channel's epoch: Keras 3 starts the next epoch's
    worker pool after it returns, while its ``on_epoch_begin`` may run as that pool's
    workers are being forked (tf_keras calls ``on_epoch_end`` between two pools too).
    """
    channel: Channel | None = handle.channel
    if channel is not None and method == "on_epoch_end":
        channel.epoch += 1
    for detector in handle.detectors:
        detector.epoch_passed()
