"""``pytest --safegen``: run a test session with :func:`safegen.enable` on.

Registered through the ``pytest11`` entry point, it does nothing unless asked:

* ``pytest --safegen`` enables safegen (check mode, Lambda shape checks) for the session;
  ``--safegen=copy`` (or any mode) picks the mode, ``--safegen-no-shapes`` leaves layers
  alone;
* or, in the ini file, ``safegen = check`` (``copy``, ``freeze``, ``off``; ``true`` means
  the default mode), which the command line overrides.

A test whose pipeline aliases fails with the ``AliasingError`` (safegen's own frames are
hidden from the traceback), unless it expects that error and catches it
(``pytest.raises``); a test during which safegen found something it only warned
about (a change it cannot pin on the generator, a repeated random stream or batch, copy
mode's warning about a dataset's own random generator) fails too, as ``safegen run``
exits 1 for it, unless ``--safegen-warn`` asks for warnings only; the message names each
kind found, with its count. The terminal summary gets a "safegen" section saying what
was guarded and checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from safegen._config import Mode
    from safegen._session import Session  # noqa: F401 - in StashKey["Session"]

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_runtest_call",
    "pytest_terminal_summary",
]

# The plugin's state, on the pytest config's stash (set when safegen is asked for).
SESSION = pytest.StashKey["Session"]()  # what safegen.session() returned at the start
WARN_ONLY = pytest.StashKey[bool]()  # --safegen-warn: no test fails for what is found

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("", "false", "no", "0")


def pytest_addoption(parser: Any) -> None:
    """Add ``--safegen[=MODE]``, ``--safegen-no-shapes`` and the ``safegen`` ini option."""
    group = parser.getgroup("safegen", "safegen: catch reused batch buffers and bad Lambdas")
    group.addoption(
        "--safegen",
        nargs="?",
        const="default",
        default=None,
        metavar="MODE",
        help="guard every data source given to Keras or tf.data and check every Lambda "
        "(MODE: check, copy, freeze or off; default: SAFEGEN_MODE, else check)",
    )
    group.addoption(
        "--safegen-no-shapes",
        action="store_true",
        default=False,
        help="with --safegen, do not check Lambda layers' output ranks nor loss shapes",
    )
    group.addoption(
        "--safegen-warn",
        action="store_true",
        default=False,
        help="with --safegen, report changed arrays as warnings only: no test fails for them",
    )
    parser.addini(
        "safegen",
        "switch safegen on for every test run: a mode (check, copy, freeze, off) or true",
        default="",
    )


def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> None:
    """Read a bare ``--safegen`` as ``--safegen=default``, so that ``pytest --safegen
    tests/`` does not take ``tests/`` for the mode."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--safegen":
            args[index] = "--safegen=default"


def _requested_mode(config: Any) -> tuple[bool, Mode | None]:
    """Whether safegen is asked for, and the mode (``None``: the default)."""
    from safegen._config import MODES, validate_mode

    value = config.getoption("safegen")
    source = "--safegen"
    if value is None:
        value = str(config.getini("safegen")).strip().lower()
        source = "the ini option safegen"
        if value in _FALSE:
            return False, None
        if value in _TRUE:
            return True, None
    if value == "default":
        return True, None
    value = value.lower()
    if value not in MODES:
        import pytest

        raise pytest.UsageError(
            f"{source}: invalid mode {value!r}; expected one of "
            f"{', '.join(map(repr, MODES))}" + ("" if source == "--safegen" else " or true")
        )
    return True, validate_mode(value, source)


def pytest_configure(config: Any) -> None:
    """Enable safegen for the session when asked."""
    wanted, mode = _requested_mode(config)
    if not wanted:
        return
    import pytest

    import safegen
    from safegen._config import validate_environment

    try:
        validate_environment()  # SAFEGEN_MODE, SAFEGEN_DISABLE: one usage error, not one per test
    except ValueError as error:
        raise pytest.UsageError(f"--safegen: {error}") from None

    warn = bool(config.getoption("safegen_warn"))
    safegen.enable(
        mode,
        shapes=not config.getoption("safegen_no_shapes"),
        on_violation="warn" if warn else None,
    )
    session = safegen.session()
    if session is not None:
        config.stash[SESSION] = session
    config.stash[WARN_ONLY] = warn
    config.add_cleanup(safegen.disable)


def _failure(found: dict[str, int]) -> BaseException:
    """The error failing a test during which safegen warned about ``found`` (kind: count):
    that of the first kind found, naming the warnings to look at."""
    from safegen._finding import KINDS, named_counts

    kinds = [kind for kind in KINDS if found.get(kind.key)]
    shown = ", ".join(dict.fromkeys(kind.shown for kind in kinds))
    error: type[BaseException] = kinds[0].error
    return error(
        f"safegen found {named_counts(found)} during this test (see the {shown} above and "
        "the safegen summary); pytest --safegen-warn reports them without failing the test"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: Any) -> Any:
    """Fail a test during which safegen found something it only warned about (an error it
    raised fails the test by itself, unless the test expected and caught it)."""
    session = item.config.stash.get(SESSION, None)
    if session is None or item.config.stash.get(WARN_ONLY, False):
        return (yield)
    # The one rule (Session.failures), less the findings safegen raised its error for:
    # such an error fails the test by itself, unless the test expected it.
    before = session.failures(raised=False)
    result = yield  # a failing test raises here: its own failure is reported as it is
    after = session.failures(raised=False)
    found = {key: count - before.get(key, 0) for key, count in after.items()}
    if any(count > 0 for count in found.values()):
        __tracebackhide__ = True
        raise _failure({key: count for key, count in found.items() if count > 0})
    return result


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Say what safegen guarded and checked."""
    session = config.stash.get(SESSION, None)
    if session is None:
        return
    terminalreporter.write_sep("=", "safegen")
    for line in session.summary().splitlines():
        terminalreporter.write_line(line)
