"""The one way to find the user's frame (safegen._frames): by module name, and installed
packages by their real locations."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import safegen
from safegen._frames import in_library, user_line


class TestInLibrary:
    """Installed packages are told from the user's code by where they are installed."""

    def test_installed_package_is_library(self):
        """pytest's own file, installed in site-packages, is library code."""
        assert in_library(pytest.__file__)

    @pytest.mark.parametrize("folder", ["safegen", "keras", "tensorflow", "tf_keras"])
    def test_user_folder_named_like_a_package_is_not_library(self, tmp_path, folder):
        """A user's file in a folder named like a framework (a clone named safegen) is
        the user's code."""
        path = tmp_path / folder / "model.py"
        path.parent.mkdir()
        path.write_text("x = 1\n")
        assert not in_library(str(path))

    def test_user_line_is_this_file(self):
        """user_line() names the caller's file and line, outside safegen and pytest."""
        line = user_line()
        assert line.endswith(f"{os.path.basename(__file__)}:{_line_of('line = user_line()')}")


def _line_of(text: str) -> int:
    with open(__file__, encoding="utf-8") as file:
        return next(i for i, line in enumerate(file, 1) if text in line and "_line_of" not in line)


class TestWarningsPointAtTheUser:
    """Warnings issued deep inside safegen point at the user's line."""

    def test_check_mode_warning_points_at_the_next_call(self):
        """An AliasingWarning from check mode names this file and the line of next()."""

        @safegen.guard(on_violation="warn")
        def batches():
            x = np.zeros(4)
            while True:
                x += 1
                yield x

        it = batches()
        next(it)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            next(it)  # the warning points here
        [warning] = [w for w in caught if issubclass(w.category, safegen.AliasingWarning)]
        assert warning.filename == __file__
        assert warning.lineno == _line_of("next(it)  # the warning points here")

    def test_freeze_mode_warning_points_at_the_next_call(self):
        """freeze mode's warning about a leaf it cannot make read-only names this line."""

        @safegen.guard(mode="freeze")
        def with_a_bytearray():  # a source of its own: freeze mode warns once per source
            yield np.zeros(2), bytearray(4)

        it = with_a_bytearray()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            next(it)  # the freeze warning points here
        [warning] = [w for w in caught if issubclass(w.category, safegen.SafegenWarning)]
        assert warning.filename == __file__
        assert warning.lineno == _line_of("next(it)  # the freeze warning points here")
