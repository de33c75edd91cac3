"""What the subcommands of ``safegen`` share: exit statuses, the usage error, argument types."""

from __future__ import annotations

import argparse

__all__ = ["BROKEN_PIPE", "SOURCE_FAILED", "USAGE_ERROR", "UsageError", "positive"]

USAGE_ERROR = 2
SOURCE_FAILED = 3
# What a shell reports for a process killed by SIGPIPE (128 + 13), as `yes | head -1` does.
BROKEN_PIPE = 141


class UsageError(Exception):
    """A bad command-line argument: printed on one line to stderr, exit status 2."""


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value
