"""``python -m safegen``: the command line of :mod:`safegen.cli`."""

from safegen.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m safegen"))
