"""Keras 2 (``tf_keras``) integration. Imported only once the program uses tf_keras."""
