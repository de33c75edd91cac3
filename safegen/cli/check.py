"""``safegen check``: pull N items from a data source under safegen and report.

Exit status: 0 clean, 1 safegen found something: an array changed after it was handed
out, or a safegen error the source raised itself (its own ``@safegen.guard``'s
``AliasingError``, a ``ShapeError``, a ``RepeatedBatchError``: each is such a finding),
2 usage error (bad path, not importable, not iterable, bad option; the message
says which), 3 the data source itself raised (its traceback is printed, without
safegen's frames); on Ctrl-C, one line, then killed by SIGINT as Python is.

The source is read in the mode checked in: its own guards that take their mode from
``SAFEGEN_MODE`` or ``configure()`` check too; one that pins ``mode="copy"`` is said so.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from safegen import _config
from safegen._frames import format_without_safegen
from safegen.cli._common import SOURCE_FAILED, USAGE_ERROR, UsageError, positive

__all__ = ["add_parser", "run"]

INTERRUPTED = 130  # where SIGINT cannot end the process (not POSIX), as shells report it

_SAFEGEN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_parser(subparsers: Any) -> None:
    """Add the ``check`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "check",
        help="pull N items from a data source and report arrays changed after being handed out",
        description=(
            "Import a generator function, a function returning an iterable, or a Keras "
            "PyDataset class, call it with the keyword arguments given, pull N items under "
            "safegen and print a report. Exit status: 0 clean, 1 safegen found something (an "
            "array changed after it was handed out, or a safegen error the source raised), "
            "2 usage error, 3 the source itself raised."
        ),
        epilog=(
            "examples: check mypkg.data:train_batches batch_size=8 --steps 50; "
            "check examples/pipeline.py:train_batches --kwargs '{\"batch_size\": 8}'"
        ),
    )
    parser.add_argument(
        "target",
        help="package.module:factory or path/to/file.py:factory (the factory may be dotted)",
    )
    parser.add_argument(
        "arguments",
        nargs="*",
        metavar="KEY=VALUE",
        help=(
            "a keyword argument for the factory; VALUE is read as JSON when it parses "
            "(8, 0.5, true, null, [1, 2], '\"text\"'), else taken as a string"
        ),
    )
    parser.add_argument(
        "--kwargs",
        metavar="JSON",
        default=None,
        help="keyword arguments as one JSON object, e.g. '{\"batch_size\": 8}' "
        "(KEY=VALUE words win over it)",
    )
    parser.add_argument(
        "--steps",
        type=positive,
        default=20,
        help="items to pull (default 20); for a dataset, at most this many per epoch",
    )
    parser.add_argument(
        "--epochs",
        type=positive,
        default=2,
        help="epochs to read a dataset for, calling on_epoch_end after each (default 2)",
    )
    parser.add_argument(
        "--mode",
        type=str.lower,
        choices=("check", "freeze"),
        default=None,
        help="default: SAFEGEN_MODE when it is check or freeze, else check",
    )
    parser.add_argument("--window", type=positive, default=None, help="items watched (default 12)")
    parser.set_defaults(func=run, extra="arguments")


def run(args: argparse.Namespace) -> int:
    """Run ``safegen check`` with parsed ``args``; returns the exit status."""
    from safegen._probe import probe
    from safegen.testing import failures

    try:
        kwargs = _keyword_arguments(args.kwargs, args.arguments)
        mode = _mode(args.mode)
        obj = _load(args.target)
    except UsageError as error:
        print(f"safegen check: {error}", file=sys.stderr)
        return USAGE_ERROR
    try:
        with _config.checking_anyway():  # it was asked to, even under SAFEGEN_DISABLE=1
            result = probe(
                obj,
                steps=args.steps,
                epochs=args.epochs,
                mode=mode,
                window=args.window,
                kwargs=kwargs,
                name=args.target,
                caller="safegen check",
            )
    except (TypeError, ValueError) as error:
        if _from_safegen(error):
            print(f"safegen check: {error}", file=sys.stderr)
            return USAGE_ERROR
        return _source_failed(args.target, error)
    except Exception as error:
        return _source_failed(args.target, error)
    except KeyboardInterrupt:
        # As `safegen run` does: one line, no traceback, then end as Python ends on an
        # uncaught KeyboardInterrupt (killed by SIGINT, which shells tell apart).
        print(f"safegen check: {args.target}: interrupted (Ctrl-C)", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        if os.name == "posix":
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return INTERRUPTED
    print(result.summary())
    return 1 if failures(result) else 0  # the one rule (safegen._finding.failing)


def _mode(given: str | None) -> str:
    """``--mode``, else ``SAFEGEN_MODE`` where it makes sense here (check, freeze)."""
    if given is not None:
        return given
    if not os.environ.get(_config.ENV_VAR, "").strip():
        return "check"
    mode = _config.settings().mode
    if mode in ("check", "freeze"):
        return mode
    why = {
        "copy": "copy mode hands out copies, so it cannot see a source rewrite what it handed out",
        "off": "off guards nothing; check runs because you asked for it",
    }[mode]
    print(
        f"safegen check: {_config.ENV_VAR}={mode} is not used here ({why}): checking in mode "
        "'check', the source's own @safegen.guard included unless it pins a mode (give "
        "--mode freeze for the other)",
        file=sys.stderr,
    )
    return "check"


def _keyword_arguments(text: str | None, words: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if text is not None:
        try:
            kwargs = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"--kwargs is not valid JSON ({error}): {text!r}") from None
        if not isinstance(kwargs, dict):
            raise UsageError(
                f"--kwargs must be a JSON object such as '{{\"batch_size\": 8}}', got {text!r}"
            )
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(
                f"unexpected argument {word!r}: arguments after the target are the factory's "
                "keyword arguments, written KEY=VALUE (e.g. batch_size=8)"
            )
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def _load(target: str) -> Any:
    """Import ``package.module:attribute`` or ``path/to/file.py:attribute``."""
    where, sep, attribute = target.rpartition(":")
    if not sep or not where or not attribute:
        raise UsageError(
            f"{target!r} is not of the form package.module:factory or path/to/file.py:factory "
            "(e.g. mypkg.data:train_batches)"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if where.endswith(".py") or "/" in where or os.sep in where:
        obj: Any = _import_file(where)
    else:
        try:
            obj = importlib.import_module(where)
        except ImportError as error:
            raise UsageError(f"cannot import module {where!r}: {error}") from error
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as error:
            raise UsageError(
                f"{where!r} has no attribute {attribute!r} (looking up {part!r})"
            ) from error
    return obj


def _import_file(where: str) -> Any:
    """Import the module at path ``where`` by its dotted name, as Python would find it.

    The directories above the file that are packages (have an ``__init__.py``) make the
    dotted name (``examples/pipeline.py`` is ``examples.pipeline``), and the first one that
    is not goes on ``sys.path``, so the module's own imports work as in its project.
    """
    path = Path(where)
    if path.suffix != ".py" or not path.is_file():
        dotted = where.removesuffix(".py").replace(os.sep, ".").replace("/", ".")
        raise UsageError(
            f"no such Python file {where!r}; give a path to a .py file or a dotted module "
            f"path such as {dotted}:factory"
        )
    path = path.resolve()
    parts = [path.stem]
    root = path.parent
    while (root / "__init__.py").is_file() and root.parent != root:
        parts.insert(0, root.name)
        root = root.parent
    name = ".".join(parts)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise UsageError(f"cannot import {where!r} as module {name!r}: {error}") from error
    found = getattr(module, "__file__", None)
    if found is None or Path(found).resolve() != path:
        raise UsageError(
            f"{where!r} would be imported as module {name!r}, but that name is already "
            f"taken by {found or 'a built-in module'}; rename the file or give its dotted "
            "module path"
        )
    return module


def _from_safegen(error: BaseException) -> bool:
    """Whether ``error`` was raised by safegen's own checks of the target (a usage error)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    filename = tb.tb_frame.f_code.co_filename
    return os.path.dirname(filename) in (_SAFEGEN_DIR, os.path.join(_SAFEGEN_DIR, "_sources"))


def _source_failed(target: str, error: BaseException) -> int:
    sys.stderr.write(format_without_safegen(error))
    name = type(error).__name__
    print(f"safegen check: {target} raised {name} while being read", file=sys.stderr)
    return SOURCE_FAILED
