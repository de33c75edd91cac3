"""tf_keras (Keras 2) integration. Imported only once the program uses ``tf_keras``."""
