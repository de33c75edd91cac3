"""Keras 3 integration (any backend). Imported only once the program uses Keras."""
