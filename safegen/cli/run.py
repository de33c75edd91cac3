"""``python -m safegen run``: run a program unmodified, with :func:`safegen.enable` on.

The program runs as ``python script.py args`` (or ``python -m module args``) would run it:
``__name__ == "__main__"``, ``sys.argv`` and ``sys.path[0]`` are what Python would set,
through :mod:`runpy`, as ``coverage run`` does. At exit, a summary of what safegen
guarded and checked goes to stderr (and, with ``--report``, to a JSON file).

Exit status: the program's own; 1 for an uncaught exception (``AliasingError`` and
``ShapeError`` included), whose traceback is printed as Python prints it, and 1 when the
program ended well but safegen found a violation it only warned about (an array changed
that it could not pin on the generator), unless ``--warn`` asked for warnings; 2 for a
usage error of ``safegen run`` itself (one line on stderr).
"""

from __future__ import annotations

import argparse
import builtins
import importlib.machinery
import io
import os
import runpy
import signal
import sys
import threading
import types
import zipfile
from types import TracebackType
from typing import Any

from safegen._frames import excepthook as _safegen_hook
from safegen._frames import format_without_safegen
from safegen.cli._common import USAGE_ERROR, UsageError, positive

__all__ = ["add_parser", "run"]

_USAGE = "%(prog)s [--mode MODE] [--warn] [--no-shapes] [--window N] [--report FILE.json] " + (
    "(script.py | -m module) [args ...]"
)
_OUR_FILES = frozenset(
    {os.path.abspath(__file__), os.path.abspath(runpy.__file__), os.path.abspath("<frozen runpy>")}
)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``run`` subcommand to the ``safegen`` command line."""
    from safegen._config import MODES

    parser: argparse.ArgumentParser = commands.add_parser(
        "run",
        usage=_USAGE,
        help="run a Python program unmodified with safegen switched on, and summarize",
        description=(
            "Run a Python program as `python script.py args` (or `python -m module args`) "
            "would, with safegen.enable() on: every generator and PyDataset given to Keras "
            "fit/evaluate/predict and every callable given to tf.data.Dataset."
            "from_generator is guarded, and every Lambda layer's output rank is checked. "
            "A summary goes to stderr at exit. Exit status: the program's own; 1 when it "
            "raised (AliasingError and ShapeError included) or when safegen found a "
            "violation (unless --warn); 2 for a usage error."
        ),
    )
    parser.add_argument(
        "--mode",
        type=str.lower,
        choices=MODES,
        default=None,
        help="guard mode (default: SAFEGEN_MODE, else check)",
    )
    parser.add_argument(
        "--warn",
        action="store_true",
        help="report changed arrays as warnings only, and keep the program's exit status "
        "(default: raise when safegen can pin the change on the generator, and exit 1 "
        "after any violation)",
    )
    parser.add_argument(
        "--no-shapes",
        action="store_true",
        help="do not check Lambda layers' output ranks nor loss shapes",
    )
    parser.add_argument(
        "--window", type=positive, default=None, help="batches check mode watches (default 12)"
    )
    parser.add_argument(
        "--report", metavar="FILE.json", default=None, help="also write the summary as JSON"
    )
    parser.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="module",
        help="run a module as `python -m module` does; what follows goes to it",
    )
    parser.add_argument(
        "program",
        nargs=argparse.REMAINDER,
        metavar="script.py [args ...]",
        help="the program and its arguments",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the program named by ``args`` with safegen enabled; returns the exit status."""
    try:
        kind, target, argv = _target(args)
        _check_report(args.report)
    except UsageError as error:
        print(f"safegen run: {error}", file=sys.stderr)
        return USAGE_ERROR

    import safegen

    safegen.enable(
        args.mode,
        shapes=not args.no_shapes,
        window=args.window,
        on_violation="warn" if args.warn else None,
    )
    session = safegen.session()
    status, outcome = _execute(kind, target, argv)
    if outcome != "interrupted":
        _wait_for_threads()  # as Python does before it exits; they stay guarded meanwhile
    safegen.disable()
    if outcome == "no such module":
        return status  # a usage error: its one line is all there is to say
    if session is not None and status == 0 and not args.warn:
        # The one rule (Session.failures): every finding of every kind, the detectors'
        # (repeated random streams, repeated batches) included, even those only warned
        # about (copy mode's on a dataset's own Generator), or raised and caught.
        found = sum(session.failures().values())
        if found:
            status = 1
            outcome += f"; exit status 1 for {found} violation(s), which --warn would not fail on"
    if session is not None:
        print(session.summary(outcome), file=sys.stderr)
        if args.report:
            try:
                with open(args.report, "w", encoding="utf-8") as file:
                    file.write(session.to_json(outcome, status))
            except OSError as error:
                print(f"safegen run: cannot write --report: {error}", file=sys.stderr)
                return status or USAGE_ERROR
    if outcome == "interrupted" and os.name == "posix":
        # End as Python ends on an uncaught KeyboardInterrupt: killed by SIGINT, which
        # shells and make tell apart from an exit status.
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return status


def _wait_for_threads() -> None:
    """Join the program's non-daemon threads, as the interpreter does at exit."""
    main = threading.main_thread()
    try:
        while True:
            running = [
                thread
                for thread in threading.enumerate()
                if thread is not main and not thread.daemon and thread.is_alive()
            ]
            if not running:
                return
            for thread in running:
                thread.join()
    except KeyboardInterrupt:
        return


def _target(args: argparse.Namespace) -> tuple[str, str, list[str]]:
    if args.module is not None:
        if args.program:
            raise UsageError("give either script.py or -m module, not both")
        if not args.module or args.module[0].startswith("-"):
            raise UsageError("-m needs a module name (usage: safegen run -m module [args ...])")
        return "module", args.module[0], list(args.module[1:])
    program = list(args.program)
    if program and program[0] == "--":
        program.pop(0)
    if not program:
        raise UsageError("no program given (usage: safegen run script.py [args ...])")
    script = program[0]
    if not os.path.exists(script):
        raise UsageError(f"can't open file {os.path.abspath(script)!r}: no such file")
    return "script", script, program[1:]


def _check_report(path: str | None) -> None:
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--report {path}: the folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--report {path}: is a folder; expected a file name such as out.json")


def _execute(kind: str, target: str, argv: list[str]) -> tuple[int, str]:
    """Run the program as Python would; returns its exit status and a word on how it ended."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [target, *argv]  # for -m, runpy puts the module's file name in sys.argv[0]
    folder_or_zip = kind == "script" and (os.path.isdir(target) or zipfile.is_zipfile(target))
    if folder_or_zip:
        del sys.path[:1]  # runpy puts the folder (or zip) itself first, as Python does
    else:
        # As Python: the script's real folder (symbolic links resolved), or for -m the
        # current directory.
        directory = os.path.dirname(os.path.realpath(target)) if kind == "script" else os.getcwd()
        if sys.path:
            sys.path[0] = directory
        else:
            sys.path.insert(0, directory)
    try:
        if folder_or_zip:
            runpy.run_path(target, run_name="__main__")
        elif kind == "script":
            _run_script(target)
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return _exit_status(exit_.code), "the program exited"
    except KeyboardInterrupt as error:
        _print_traceback(error)
        return 130, "interrupted"
    except BaseException as error:  # noqa: BLE001 - printed as Python would, then status 1
        if kind == "module" and isinstance(error, ImportError) and _is_missing(error, target):
            print(f"safegen run: no module named {target!r}", file=sys.stderr)
            return USAGE_ERROR, "no such module"
        _print_traceback(error)
        return 1, f"the program raised {type(error).__name__}"
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        sys.stdout.flush()
    return 0, "the program finished"


def _run_script(target: str) -> None:
    """Execute a script file as ``python target`` does: as ``__main__``, with an absolute
    ``__file__`` (and so absolute file names in tracebacks) and ``sys.argv[0]`` as typed."""
    path = os.path.abspath(target)
    with io.open_code(path) as file:
        source = file.read()
    code = compile(source, path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=path,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", path),
        __spec__=None,
        __cached__=None,
    )
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _is_missing(error: ImportError, target: str) -> bool:
    """Whether the module to run itself is missing (not something it imports)."""
    tb = error.__traceback__
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) not in _OUR_FILES:
            return False
        tb = tb.tb_next
    return True


def _exit_status(code: object) -> int:
    """What Python's own exit would make of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code % 256
    print(code, file=sys.stderr)
    return 1


def _print_traceback(error: BaseException) -> None:
    """Print ``error`` as Python would, without runpy's frames on top and without
    safegen's own frames (as pytest hides them), which are not where the bug is."""
    tb: TracebackType | None = error.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) in _OUR_FILES:
        tb = tb.tb_next
    if sys.excepthook not in (sys.__excepthook__, _safegen_hook):  # the program's own
        sys.excepthook(type(error), error, tb)
        sys.stderr.flush()
        return
    sys.stderr.write(format_without_safegen(error, tb, keep_tb=True))
    sys.stderr.flush()
