"""A Keras 3 program, no safegen in it, training on augmentation datasets ported from public
code in 2 worker processes. Run by tests/test_random_streams.py under ``python -m safegen
run``; the arguments name the datasets (see ``DATASETS``), trained one after the other;
with NOISE_DIR set, every augmented image (or transform) is saved there."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tests import ported_random_datasets as ported  # noqa: E402

PROCESSES = {"workers": 2, "use_multiprocessing": True}
DATASETS = {
    "flow_seed": lambda folder: (ported.image_flow(seed=1, folder=folder, **PROCESSES), 1),
    "flow": lambda folder: (ported.image_flow(folder=folder, **PROCESSES), 1),
    "flow_per_worker": lambda folder: (
        ported.image_flow_per_worker(seed=1, folder=folder, **PROCESSES),
        1,
    ),
    "retina": lambda folder: (ported.retina(folder=folder, **PROCESSES), 4),
    "retina_per_worker": lambda folder: (ported.retina_per_worker(folder=folder, **PROCESSES), 4),
}

if __name__ == "__main__":
    for name in sys.argv[1:]:
        dataset, outputs = DATASETS[name](os.environ.get("NOISE_DIR"))
        ported.image_model(outputs).fit(dataset, epochs=2, verbose=0)
        print("trained", name)
