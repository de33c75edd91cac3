"""The ``safegen`` command line (also ``python -m safegen``).

Each subcommand lives in a module of this package that exposes one function::

    def add_parser(subparsers: argparse._SubParsersAction) -> None:
        parser = subparsers.add_parser("name", help="...", description="...")
        parser.add_argument(...)
        parser.set_defaults(func=run)   # run(args: argparse.Namespace) -> int, the exit status

Adding a subcommand is therefore one import and one call in :func:`build_parser`::

    from safegen.cli import check, demo, run
    ...
    run.add_parser(commands)

What :func:`main` does for every subcommand, so that none has to:

* reads ``SAFEGEN_MODE`` and ``SAFEGEN_DISABLE`` once the command line is parsed (so
  ``--help`` and ``--version`` always answer); an explicit ``--mode`` wins over
  ``SAFEGEN_MODE``, which is then not read; an invalid value is reported on one line and
  the exit status is 2 (usage error), whatever the subcommand;
* names itself as it was invoked (``safegen`` for the console script, ``python -m
  safegen`` from ``safegen/__main__.py``) and answers ``--version``;
* leaves quietly with status 141 (as a process killed by ``SIGPIPE``) when stdout is
  closed early (``safegen check ... | head -1``), instead of a ``BrokenPipeError``
  traceback; SIGPIPE's handler itself is left alone, so programs run by a subcommand
  behave as they would without safegen;
* a subcommand that accepts ``KEY=VALUE`` words anywhere on its command line sets
  ``set_defaults(extra="<dest>")``: words argparse could not place are appended to
  ``args.<dest>`` (argparse cannot take positionals after options), and the subcommand
  rejects any that are not ``KEY=VALUE``.

Exit statuses: 0 success, 2 usage error; each subcommand documents its others
(``check``: 1 safegen found something, a changed array or a safegen error the source
raised; 3 the data source raised).
"""

from __future__ import annotations

import argparse
import os
import sys

import safegen
from safegen import _config
from safegen.cli import check, demo, run
from safegen.cli._common import BROKEN_PIPE, USAGE_ERROR

__all__ = ["build_parser", "main"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of the ``safegen`` command, with every subcommand.

    Args:
        prog: the program name shown in usage lines (default: ``sys.argv[0]``'s base name).

    Returns:
        The parser; subcommands set ``func`` in the namespace it returns.

    Example:
        >>> from safegen.cli import build_parser
        >>> args = build_parser("safegen").parse_args(["check", "mypkg.data:batches"])
        >>> args.command, args.target, args.steps
        ('check', 'mypkg.data:batches', 20)
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Catch the silent data bugs that make a neural network learn nothing.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=(
            f"safegen {safegen.__version__} from {os.path.dirname(safegen.__file__)} "
            f"(Python {sys.version.split()[0]})"
        ),
    )
    parser.set_defaults(func=None, extra=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parser(commands)
    demo.add_parser(commands)
    check.add_parser(commands)
    return parser


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run the ``safegen`` command line; returns the exit status.

    Args:
        argv: the arguments after the program name (``sys.argv[1:]`` when ``None``).
        prog: the program name for usage lines (default: ``sys.argv[0]``'s base name,
            ``safegen`` for the console script).

    Returns:
        The exit status: 0 success, 2 usage error, the subcommand's own otherwise, 141
            when stdout was closed early.

    Example:
        >>> from safegen.cli import main
        >>> main(["check", "no_colon_here"])  # doctest: +SKIP
        2
    """
    try:
        return _main(argv, prog)
    except BrokenPipeError:
        # The reader went away (`| head -1`). Point stdout at /dev/null so that the
        # interpreter's final flush does not fail again, and leave quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE


def _main(argv: list[str] | None, prog: str | None) -> int:
    name = prog or os.path.basename(sys.argv[0]) or "safegen"
    parser = build_parser(name)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.extra is None:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        getattr(args, args.extra).extend(unknown)
    if args.func is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        if getattr(args, "mode", None) is not None:
            _config.use_mode(args.mode)  # the explicit option wins over SAFEGEN_MODE
        _config.validate_environment()
    except ValueError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return USAGE_ERROR
    status: int = args.func(args)
    sys.stdout.flush()
    return status
