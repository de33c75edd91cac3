# The article's first program (pitfall 1), Keras 2, as it was published: only its line
# breaks and indentation were restored (they were lost in the copy this project has) and
# `import safegen` and `@safegen.guard` were added. The comments' text was lost too; the
# `#` marks are where they were. `keras` here is Keras 2: tests/tf_keras_article_run.py
# runs this file with `keras` bound to the tf_keras package.
import numpy as np
from keras.layers import Input, Dense, Lambda
from keras.models import Model
import keras.backend as K
import safegen

#
@safegen.guard
def train_iterator(batch_size=64):
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i][0] = np.random.randint(0, 100)
            x[i][1] = np.random.randint(0, 100)
        x_mean = (x[::,0] + x[::,1]) / 2
        x_mean_ex = np.expand_dims(x_mean, -1)
        yield [x], [x_mean_ex]

#
def create_model():
    x = Input(name = 'x', shape=(2,))
    x_mean = Dense(1)(x)
    model = Model(inputs=x, outputs=x_mean)
    return model

#
model = create_model()
model.compile(loss=['mse'], optimizer = 'rmsprop')
model.fit_generator(train_iterator(), steps_per_epoch = 1000, epochs = 100, verbose = 1)

#
x, x_mean = next(train_iterator(1))
print(x, x_mean, model.predict(x))
