"""Framework integrations: everything in safegen that knows about a framework.

* ``keras``: Keras 3 (layer shape checks; ``fit``/``evaluate``/``predict`` hooks).
* ``tf_keras``: Keras 2 as the ``tf_keras`` package.
* ``tf_data``: ``tf.data.Dataset.from_generator``.
* ``pytest_plugin``: ``pytest --safegen``.

The core (``safegen._*`` modules) never imports anything here at import time; an
integration is loaded only when the program has imported its framework.
"""
