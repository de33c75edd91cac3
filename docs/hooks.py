"""MkDocs hooks: pages that read well on GitHub too, and benchmark results taken from
benchmarks/results/, not from copies.

The pages are written so that GitHub shows them sensibly (its links resolve from
``docs/``); the site replaces these lines, each alone on its line:

* ``![...](../benchmarks/results/per_yield.png)``: every ``benchmarks/results/*.png`` is
  added to the site as ``results/<name>.png`` and the link is pointed there, so the
  strict build checks it;
* ``[results: per_yield.md](../benchmarks/results/per_yield.md)`` becomes that results
  file, its headings moved down three levels so that they sit below the page's own
  sections (and out of its table of contents, which shows levels 1 to 3);
* ``[`safegen.guard`](../safegen/_guard.py)`` becomes ``::: safegen.guard``: mkdocstrings
  renders the object from its docstring (GitHub shows the link to its source);
* ``[CHANGELOG.md](../CHANGELOG.md)`` becomes the changelog itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
IMAGE = re.compile(
    r"^(?P<alt>!\[[^\]]*\])\(\.\./benchmarks/(?P<path>results/[\w.-]+\.png)\)$", re.M
)
INCLUDE = re.compile(
    r"^\[results: (?P<name>[\w.-]+\.md)\]\(\.\./benchmarks/results/(?P=name)\)$", re.M
)
API = re.compile(r"^\[`(?P<name>safegen(?:\.\w+)+)`\]\(\.\./safegen/[\w/]+\.py\)$", re.M)
CHANGELOG = re.compile(r"^\[CHANGELOG\.md\]\(\.\./CHANGELOG\.md\)$", re.M)
HEADING = re.compile(r"^(#{1,6}) ", re.M)


def on_files(files: Files, config: Any) -> Files:
    """Add the benchmark plots to the site."""
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"results/{png.name}", abs_src_path=str(png)))
    return files


def _results(match: re.Match[str]) -> str:
    path = RESULTS / match["name"]
    if not path.is_file():
        from mkdocs.exceptions import PluginError

        raise PluginError(
            f"docs/hooks.py: {path} does not exist; run the benchmark that writes it "
            f"(python benchmarks/{path.stem}.py) or remove its [results: ...] line"
        )
    text = path.read_text(encoding="utf-8")
    return HEADING.sub(lambda h: "#" * min(len(h[1]) + 3, 6) + " ", text)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Turn the GitHub-readable lines above into what the site shows."""
    markdown = IMAGE.sub(r"\g<alt>(\g<path>)", markdown)
    markdown = INCLUDE.sub(_results, markdown)
    markdown = API.sub(r"::: \g<name>", markdown)
    return CHANGELOG.sub(lambda _: (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), markdown)
