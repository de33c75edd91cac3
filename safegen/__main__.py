"""The ``safegen`` command: ``python -m safegen demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``safegen`` command line; returns the exit status.

    Args:
        argv: the arguments after the program name (``sys.argv[1:]`` when ``None``).

    Returns:
        0 on success, 2 on a usage error.

    Example:
        >>> from safegen.__main__ import main
        >>> main(["--help"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(
        prog="python -m safegen",
        description="Catch the silent data bugs that make a neural network learn nothing.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="show the seed article's three pitfalls and safegen catching each"
    )
    demo.add_argument("--steps", type=int, default=40, help="training steps per epoch (default 40)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.steps < 1:
            parser.error(f"--steps must be at least 1, got {args.steps}")
        from safegen._demo import run

        return run(steps=args.steps)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
