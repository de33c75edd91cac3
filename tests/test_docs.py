"""Every code example in the documentation runs, and every command it names is tested.

The convention, for README.md and every page under docs/:

* Every ```` ```python ```` block is executed. The blocks of one page run in order, in one
  shared namespace (like one script), in a fresh subprocess per page whose working
  directory is a new temporary one: a page's TensorFlow import stays out of the pytest
  process, and pages do not depend on each other.
* A block whose first line is exactly ``# raises: <ExceptionName>`` (``safegen.AliasingError``,
  ``ValueError``) must raise that exception; the name is resolved in the page's namespace,
  then among the builtins, then by importing its module, and checked with ``isinstance``.
  Execution goes on with the next block.
* Blocks that are not meant to run use another fence language: ``text`` for output,
  ``console`` or ``bash`` for the shell.
* A page whose Python blocks import keras or tensorflow is marked ``slow`` and ``keras``;
  one that imports torch, ``slow`` and ``torch``.

Shell commands in ``console``, ``bash`` or unlabelled blocks that name a file of the
repository (``python -m safegen run examples/...``, ``python benchmarks/per_yield.py``)
must be exercised somewhere in the suite: ``COMMANDS`` maps each one to the existing test
that runs it, or to a ``Run`` that ``TestCommands`` runs here; a command missing from
``COMMANDS`` fails ``TestCommands``.

Run one page by hand with ``python tests/test_docs.py docs/guard.md``.
"""

from __future__ import annotations

import builtins
import importlib
import os
import re
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")
RAISES = re.compile(r"^# raises: (?P<name>[\w.]+)$")
FRAMEWORK = re.compile(r"^\s*(?:import|from)\s+(?:keras|tensorflow|tf_keras)\b", re.MULTILINE)
TORCH = re.compile(r"^\s*(?:import|from)\s+torch\b", re.MULTILINE)


@dataclass
class Block:
    """A fenced code block of a Markdown page."""

    language: str
    line: int  # the line of its first code line, counted from 1
    code: str


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of ``path``, in order (nested fences are not supported)."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ", 1)[0].lower()
        body: list[str] = []
        index += 1
        first_line = index + 1
        while index < len(lines) and lines[index].strip() != fence:
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        found.append(Block(language, first_line, "\n".join(body)))
        index += 1
    return found


def python_blocks(path: Path) -> list[Block]:
    """The blocks of ``path`` that run."""
    return [block for block in blocks(path) if block.language in ("python", "py")]


def _resolve(name: str, namespace: dict) -> type:
    """The exception class named ``name``: page namespace, builtins, then importing."""
    head, *rest = name.split(".")
    if head in namespace:
        value = namespace[head]
    elif hasattr(builtins, head):
        value = getattr(builtins, head)
    else:
        value = importlib.import_module(head)
    for part in rest:
        try:
            value = getattr(value, part)
        except AttributeError:
            value = importlib.import_module(f"{value.__name__}.{part}")
    if not (isinstance(value, type) and issubclass(value, BaseException)):
        raise TypeError(f"# raises: {name} is not an exception class")
    return value


def run_page(path: Path) -> int:
    """Run the Python blocks of ``path`` as one script; 0 when every block behaved."""
    namespace: dict = {"__name__": "__main__"}
    for number, block in enumerate(python_blocks(path), 1):
        where = f"{path.name}, block {number} (line {block.line})"
        first = block.code.splitlines()[0] if block.code else ""
        expected = RAISES.match(first)
        # Blank lines in front, so that tracebacks give the line in the Markdown file.
        source = "\n" * (block.line - 1) + block.code
        try:
            exec(compile(source, str(path), "exec"), namespace)
        except BaseException as error:  # noqa: BLE001 - reported below, then judged
            if expected and isinstance(error, _resolve(expected["name"], namespace)):
                continue
            traceback.print_exc()
            print(f"\n{where}: raised {type(error).__name__}", file=sys.stderr)
            return 1
        if expected:
            print(f"{where}: did not raise {expected['name']}", file=sys.stderr)
            return 1
    return 0


def _page_params():
    params = []
    for path in PAGES:
        code = "\n".join(block.code for block in python_blocks(path))
        if not code:
            continue
        marks = [pytest.mark.slow, pytest.mark.keras] if FRAMEWORK.search(code) else []
        if TORCH.search(code):
            marks = [*(marks or [pytest.mark.slow]), pytest.mark.torch]
        params.append(pytest.param(path, id=str(path.relative_to(ROOT)), marks=marks))
    return params


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGEN_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    return env


SHELL_LANGUAGES = ("console", "bash", "sh", "shell", "")
COMMENT = re.compile(r"\s+#\s.*$")


@dataclass(frozen=True)
class Run:
    """A documented command that no other test runs: run here as ``argv`` (``{tmp}`` is a
    temporary directory), expecting ``status`` and ``fragment`` in its output."""

    argv: tuple[str, ...]
    status: int
    fragment: str
    requires: tuple[str, ...] = ()  # modules of an extra the README's install leaves out


@dataclass(frozen=True)
class NotRun:
    """A documented command that no test runs, and why."""

    reason: str


# Every documented shell command that names a file of the repository, and what exercises
# it: the test that runs it (file::class::function), a Run made here, or why none does.
COMMANDS: dict[str, str | Run | NotRun] = {
    "python -m safegen run examples/unmodified/mean_generator.py": (
        "tests/test_run.py::TestUnmodifiedPrograms::"
        "test_reused_buffer_program_stops_with_aliasing_error"
    ),
    "python -m safegen run --mode copy examples/unmodified/mean_generator.py": Run(
        ("-m", "safegen", "run", "--mode", "copy", "examples/unmodified/mean_generator.py"),
        0,
        "source train_iterator() at examples/unmodified/mean_generator.py:",
    ),
    "python -m safegen run examples/unmodified/mean_lambda.py": (
        "tests/test_run.py::TestUnmodifiedPrograms::test_lambda_program_stops_with_shape_error"
    ),
    "python -m safegen run examples/unmodified/mean_fixed.py": (
        "tests/test_run.py::TestUnmodifiedPrograms::test_fixed_program_exits_0_with_no_violations"
    ),
    "python -m safegen run examples/unmodified/loss_subclass.py": (
        "tests/test_losses.py::TestRun::test_example_exits_1_with_the_shape_error"
    ),
    "python -m safegen run examples/unmodified/noisy_workers.py": (
        "tests/test_random_streams.py::TestSafegenRun::test_check_mode_fails_with_the_report"
    ),
    "python -m safegen run --mode copy examples/unmodified/noisy_workers.py": (
        "tests/test_random_streams.py::TestSafegenRun::test_copy_mode_exits_0_with_distinct_draws"
    ),
    "python -m safegen check examples/pipeline.py:train_batches --steps 3": (
        "tests/test_cli.py::TestCommandLine::test_file_path_target"
    ),
    "python -m safegen check examples.pipeline:fixed_batches --steps 50": (
        "tests/test_examples.py::test_ci_check"
    ),
    "bash examples/ci_check.sh": "tests/test_examples.py::test_ci_check",
    "python benchmarks/per_yield.py": "tests/test_benchmarks.py::TestBenchmarks::test_per_yield",
    "python benchmarks/per_yield.py --root /tmp/cfdf609 --root /tmp/base2d6 --rounds 30": (
        "tests/test_benchmarks.py::TestBenchmarks::test_per_yield_against_another_checkout"
    ),
    "python benchmarks/mean_training.py": (
        "tests/test_benchmarks.py::TestBenchmarks::test_mean_training"
    ),
    "python benchmarks/tf_data.py": "tests/test_benchmarks.py::TestBenchmarks::test_tf_data",
    "python benchmarks/shape_checked.py": (
        "tests/test_benchmarks.py::TestBenchmarks::test_shape_checked"
    ),
    "python benchmarks/loss_checks.py": (
        "tests/test_benchmarks.py::TestBenchmarks::test_loss_checks"
    ),
    "python benchmarks/many_leaves.py": (
        "tests/test_benchmarks.py::TestBenchmarks::test_many_leaves"
    ),
    "python benchmarks/import_time.py": (
        "tests/test_benchmarks.py::TestBenchmarks::test_import_time"
    ),
    "python benchmarks/structure_walk.py": (
        "tests/test_benchmarks.py::TestBenchmarks::test_structure_walk"
    ),
    "python benchmarks/wrapper_call.py": (
        "tests/test_benchmarks.py::TestBenchmarks::test_wrapper_call"
    ),
    "python benchmarks/detectors.py": NotRun(
        "it has no --quick or --out option: every run takes about a minute and rewrites "
        "benchmarks/results/detectors.{json,md}"
    ),
    "python benchmarks/run_overhead.py": Run(
        ("benchmarks/run_overhead.py", "--quick", "--out", "{tmp}"), 0, "", ("tqdm",)
    ),
    "python tools/keras_suite.py": "tests/test_shape.py::TestKerasSuite::test_quick_run",
}


def shell_commands(path: Path) -> list[str]:
    """The shell commands of ``path``'s console, bash and unlabelled blocks, without
    prompts and trailing comments; in a block with ``$`` prompts, only those lines."""
    commands = []
    for block in blocks(path):
        if block.language not in SHELL_LANGUAGES:
            continue
        lines = block.code.splitlines()
        prompted = [line[2:] for line in lines if line.startswith("$ ")]
        for line in prompted or lines:
            line = COMMENT.sub("", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def names_repo_file(command: str) -> bool:
    """Whether ``command`` names a file of the repository (``examples/x.py:factory`` or
    ``examples.pipeline:factory`` included)."""
    for word in command.split():
        word = word.split(":", 1)[0]
        if "/" in word and (ROOT / word).is_file():
            return True
        if "." in word and "/" not in word and (ROOT / (word.replace(".", "/") + ".py")).is_file():
            return True
    return False


def documented_commands() -> dict[str, list[str]]:
    """Each documented command that names a repository file, with the pages naming it."""
    found: dict[str, list[str]] = {}
    for path in PAGES:
        for command in shell_commands(path):
            if names_repo_file(command):
                found.setdefault(command, []).append(str(path.relative_to(ROOT)))
    return found


class TestCommands:
    """The shell commands of the docs that name repository files are all exercised."""

    def test_every_command_is_listed(self):
        """Each documented command naming a repository file is in COMMANDS."""
        missing = {c: pages for c, pages in documented_commands().items() if c not in COMMANDS}
        assert not missing, f"add these to COMMANDS in tests/test_docs.py: {missing}"

    def test_no_stale_entries(self):
        """Each entry of COMMANDS is still documented somewhere."""
        stale = set(COMMANDS) - set(documented_commands())
        assert not stale, f"no longer in the docs: {sorted(stale)}"

    @pytest.mark.parametrize(
        "node", sorted({v for v in COMMANDS.values() if isinstance(v, str)}), ids=str
    )
    def test_named_test_exists(self, node):
        """A test that COMMANDS names is defined where it says."""
        file, *names = node.split("::")
        source = (ROOT / file).read_text(encoding="utf-8")
        kinds = ["class"] * (len(names) - 1) + ["def"]
        for name, kind in zip(names, kinds, strict=True):
            assert re.search(rf"^\s*{kind} {name}\b", source, re.MULTILINE), node

    @pytest.mark.slow
    @pytest.mark.keras
    @pytest.mark.parametrize(
        "command", [c for c, v in COMMANDS.items() if isinstance(v, Run)], ids=str
    )
    def test_command_runs(self, command, tmp_path):
        """A documented command no other test runs exits as expected, from the repository."""
        run = COMMANDS[command]
        assert isinstance(run, Run)
        for module in run.requires:  # the bench extra's, as tests/test_benchmarks.py skips
            pytest.importorskip(module)
        argv = [arg.replace("{tmp}", str(tmp_path)) for arg in run.argv]
        result = subprocess.run(
            [sys.executable, *argv],
            cwd=ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = result.stdout + result.stderr
        assert result.returncode == run.status, output[-5000:]
        assert run.fragment in output, output[-5000:]


# docs/api.md's lines that the site renders from a docstring (docs/hooks.py), each a link
# to the source file that holds it.
API_LINK = re.compile(r"^\[`safegen\.(\w+)`\]\(\.\./(safegen/[\w/]+\.py)\)$", re.MULTILINE)


def test_api_reference_covers_every_public_name():
    """docs/api.md renders every name in safegen.__all__, and safegen.testing."""
    import safegen

    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    rendered = {name for name, _ in API_LINK.findall(text)}
    assert set(safegen.__all__) | {"testing"} <= rendered, sorted(set(safegen.__all__) - rendered)


def test_api_reference_links_to_each_definition():
    """On GitHub, each name of docs/api.md links to the file that defines it."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for name, path in API_LINK.findall(text):
        source = (ROOT / path).read_text(encoding="utf-8")
        defined = name == "testing" or re.search(rf"^(class|def) {name}\b", source, re.M)
        assert defined, f"docs/api.md: {name} is not defined in {path}"


class TestSiteLayout:
    """The built site's layout: a nested API table of contents, code that is not cut off."""

    def test_api_objects_nest_under_sections(self):
        """mkdocstrings renders each object one heading level below the API reference's
        sections, within the table of contents' depth, so that the contents nest."""
        config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
        level = int(re.search(r"^\s+heading_level: (\d+)$", config, re.MULTILINE)[1])
        depth = int(re.search(r"^\s+toc_depth: (\d+)$", config, re.MULTILINE)[1])
        text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
        sections = {len(h) for h in re.findall(r"^(#+) ", text, re.MULTILINE)} - {1}
        assert sections == {level - 1} and level <= depth, (sections, level, depth)

    def test_code_blocks_wrap(self):
        """A stylesheet of the site wraps long lines of code blocks."""
        config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
        sheets = re.findall(r"^extra_css:\n((?:  - \S+\n)+)", config, re.MULTILINE)
        paths = [line.split("- ", 1)[1] for block in sheets for line in block.splitlines()]
        css = "".join((ROOT / "docs" / path).read_text(encoding="utf-8") for path in paths)
        assert re.search(r"pre > code \{[^}]*white-space: pre-wrap", css), css


class TestReadableOnGitHub:
    """The pages read sensibly on GitHub, where the README links to them: no directive
    that only the site understands, and every image and link resolves from docs/."""

    @pytest.mark.parametrize("path", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
    def test_no_site_only_directive(self, path):
        """No mkdocstrings `:::` line, snippet `--8<--` line or results comment."""
        text = path.read_text(encoding="utf-8")
        for pattern in (r"^::: ", r"^--8<--", r"^<!-- results:"):
            assert not re.search(pattern, text, re.MULTILINE), (path.name, pattern)

    @pytest.mark.parametrize("path", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
    def test_relative_images_and_links_resolve(self, path):
        """Each relative image or link target (outside code blocks) is a file of the
        repository, as GitHub resolves it from the page's folder."""
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            assert (path.parent / target).exists(), f"{path.name}: {target}"


@pytest.mark.parametrize("path", _page_params())
def test_page_examples_run(path, tmp_path):
    """The Python blocks of one page run as one script, and raise where they say so."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(path)],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


if __name__ == "__main__":
    sys.exit(run_page(Path(sys.argv[1]).resolve()))
