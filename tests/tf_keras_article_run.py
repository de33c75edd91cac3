"""Run a Keras 2 program with ``keras`` meaning tf_keras, as it did when Keras 2 was Keras.

Usage: python tests/tf_keras_article_run.py PROGRAM.py [args...]

tf_keras is the Keras 2 code base under another name. The program runs unmodified, as
``__main__`` (``runpy``), with ``TF_USE_LEGACY_KERAS=1`` (so ``tf.keras`` is tf_keras too),
after ``keras`` and its public submodules (``keras.layers``,
``keras.models``, ``keras.backend``, ...) are bound to tf_keras's in ``sys.modules``, so
``import keras`` never reaches Keras 3 in this process.
"""

from __future__ import annotations

import os
import runpy
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Without it, `import tensorflow` imports Keras 3 (for `tf.keras`); with it, `tf.keras` is
# tf_keras and Keras 3 is never loaded.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tf_keras  # noqa: E402


def alias_keras_to_tf_keras() -> None:
    """Bind ``keras`` and ``keras.<name>`` to ``tf_keras`` and its public submodules."""
    if "keras" in sys.modules and sys.modules["keras"] is not tf_keras:
        raise RuntimeError("Keras 3 is already imported in this process")
    sys.modules["keras"] = tf_keras
    for name in dir(tf_keras):
        module = getattr(tf_keras, name)
        if isinstance(module, types.ModuleType) and module.__name__.startswith("tf_keras."):
            sys.modules[f"keras.{name}"] = module


if __name__ == "__main__":
    alias_keras_to_tf_keras()
    program = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(program))
    runpy.run_path(program, run_name="__main__")
