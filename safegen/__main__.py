"""The ``safegen`` command: ``python -m safegen demo`` and ``python -m safegen check``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Any

USAGE_ERROR = 2
SOURCE_FAILED = 3


class _UsageError(Exception):
    """A bad command-line argument: printed to stderr, exit status 2."""


def _load(target: str) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise _UsageError(
            f"{target!r} is not of the form package.module:factory (e.g. mypkg.data:train_batches)"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise _UsageError(f"cannot import module {module_name!r}: {error}") from error
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as error:
            raise _UsageError(
                f"module {module_name!r} has no attribute {attribute!r} (looking up {part!r})"
            ) from error
    return obj


def _check(args: argparse.Namespace) -> int:
    from safegen._probe import probe

    try:
        obj = _load(args.target)
        result = probe(obj, steps=args.steps, mode=args.mode, window=args.window, name=args.target)
    except _UsageError as error:
        print(f"safegen check: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (TypeError, ValueError) as error:
        if _from_safegen(error):
            print(f"safegen check: {error}", file=sys.stderr)
            return USAGE_ERROR
        return _source_failed(args.target, error)
    except Exception as error:
        return _source_failed(args.target, error)
    print(result.summary())
    return 0 if result.clean else 1


def _from_safegen(error: BaseException) -> bool:
    """Whether ``error`` was raised by safegen's own checks of the target (a usage error)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    return os.path.dirname(tb.tb_frame.f_code.co_filename) == os.path.dirname(__file__)


def _source_failed(target: str, error: BaseException) -> int:
    traceback.print_exception(error, file=sys.stderr)
    name = type(error).__name__
    print(f"safegen check: {target} raised {name} while being read", file=sys.stderr)
    return SOURCE_FAILED


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the ``safegen`` command line; returns the exit status.

    ``check`` exits with 0 when the source is clean, 1 when safegen found a change, 2 on
    a usage error (bad path, not importable, not iterable, bad option), 3 when the data
    source itself raised an exception (its traceback is printed).

    Args:
        argv: the arguments after the program name (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.

    Example:
        >>> from safegen.__main__ import main
        >>> main(["check", "no_colon_here"])  # doctest: +SKIP
        2
    """
    parser = argparse.ArgumentParser(
        prog="python -m safegen",
        description="Catch the silent data bugs that make a neural network learn nothing.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="show the seed article's three pitfalls and safegen catching each"
    )
    demo.add_argument(
        "--steps", type=_positive, default=40, help="training steps per epoch (default 40)"
    )
    check = commands.add_parser(
        "check",
        help="pull N items from a data source and report arrays changed after being handed out",
        description=(
            "Import a generator function, a function returning an iterable, or a Keras "
            "PyDataset class, pull N items under safegen and print a report. Exit status: "
            "0 clean, 1 an array changed after it was handed out, 2 usage error, 3 the "
            "source itself raised."
        ),
    )
    check.add_argument("target", help="package.module:factory (called with no arguments)")
    check.add_argument("--steps", type=_positive, default=20, help="items to pull (default 20)")
    check.add_argument("--mode", choices=("check", "freeze"), default="check")
    check.add_argument("--window", type=_positive, default=None, help="items watched (default 12)")
    from safegen.cli.run import add_parser as add_run

    add_run(commands)
    args = parser.parse_args(argv)
    if args.command == "run":
        return int(args.func(args))
    if args.command == "demo":
        from safegen._demo import run

        return run(steps=args.steps)
    if args.command == "check":
        return _check(args)
    parser.print_help(sys.stderr)
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
