"""enable()'s patching machinery (safegen/integrations/_patching.py), without a framework.

The framework integrations patch Keras, tf_keras and tf.data with it; here it patches
plain classes, so that it also runs on the oldest wrapt safegen supports.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import wrapt

import safegen
from safegen.integrations._patching import patch, training_method


def _calls(log):
    """A wrapt wrapper that records the instance and arguments, then calls through."""

    def wrapper(wrapped, instance, args, kwargs):
        log.append((instance, args, kwargs))
        return wrapped(*args, **kwargs)

    return wrapper


class Base:
    def method(self, x):
        return ("method", x)

    @staticmethod
    def static(x):
        return ("static", x)

    @classmethod
    def klass(cls, x):
        return (cls.__name__, x)


class Child(Base):
    def __init__(self):
        self.items = iter([1, 2])

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.items)


class TestPatch:
    """patch() wraps an attribute with wrapt and undo() restores exactly what was there."""

    @pytest.mark.parametrize(
        ("name", "call", "expected"),
        [
            ("method", lambda owner: owner().method(1), ("method", 1)),
            ("static", lambda owner: owner.static(2), ("static", 2)),
            ("klass", lambda owner: owner.klass(3), ("Child", 3)),
        ],
    )
    def test_kinds_of_attribute_bind_as_before(self, name, call, expected):
        """A method, a staticmethod and a classmethod, inherited, bind and answer as
        before; the wrapper sees the call; undo deletes the attribute it added."""
        log = []
        assert name not in Child.__dict__
        undo = patch(Child, name, _calls(log))
        try:
            assert isinstance(Child.__dict__[name], wrapt.FunctionWrapper)
            assert call(Child) == expected
            assert len(log) == 1 and log[0][1][-1] == expected[1]
        finally:
            undo()
        assert name not in Child.__dict__  # the inherited one shows through again
        assert call(Child) == expected and len(log) == 1

    def test_special_method(self):
        """A patched __next__ is used by next() and for-loops, and restored after."""
        log = []
        original = Child.__dict__["__next__"]
        undo = patch(Child, "__next__", _calls(log))
        it = Child()
        assert list(it) == [1, 2] and len(log) == 3  # two values, then StopIteration
        undo()
        assert Child.__dict__["__next__"] is original

    def test_signature_and_name_are_the_originals(self):
        """The patched method keeps the original's name and signature."""
        undo = patch(Base, "method", _calls([]))
        try:
            assert Base.method.__name__ == "method"
            assert str(inspect.signature(Base().method)) == "(x)"
        finally:
            undo()

    def test_undo_leaves_a_later_patch_in_place(self):
        """If someone patched over safegen's patch, undo leaves theirs alone."""
        undo = patch(Base, "method", _calls([]))

        def theirs(self, x):
            return "theirs"

        Base.method = theirs
        try:
            undo()
            assert Base.__dict__["method"] is theirs
        finally:
            del Base.method

            def method(self, x):
                return ("method", x)

            Base.method = method


class Trainer:
    def fit(self, x=None, epochs=1, validation_data=None):
        return [next(x) for _ in range(epochs)] if x is not None else None


def reused():
    x = np.zeros(2)
    while True:
        x += 1
        yield x


class TestTrainingMethod:
    """training_method guards the data arguments of a fit-like method while enabled."""

    def test_generator_argument_is_guarded_positional_or_keyword(self):
        """A generator given by position or by keyword is checked while enabled."""
        undo = patch(Trainer, "fit", training_method(Trainer.fit, ("x", "validation_data")))
        try:
            with safegen.enabled():
                with pytest.raises(safegen.AliasingError):
                    Trainer().fit(reused(), 2)
                with pytest.raises(safegen.AliasingError):
                    Trainer().fit(x=reused(), epochs=2)
            batches = Trainer().fit(reused(), 2)  # not enabled: passed through untouched
            assert batches[0] is batches[1]
        finally:
            undo()
        assert "fit" in Trainer.__dict__ and not isinstance(
            Trainer.__dict__["fit"], wrapt.FunctionWrapper
        )

    def test_bad_arguments_keep_the_method_s_own_error(self):
        """Arguments the signature refuses reach the method, which words the error."""
        undo = patch(Trainer, "fit", training_method(Trainer.fit, ("x",)))
        try:
            with safegen.enabled(), pytest.raises(TypeError, match="unexpected keyword"):
                Trainer().fit(nonsense=1)
        finally:
            undo()
