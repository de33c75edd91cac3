"""MkDocs hooks: the benchmark results come from benchmarks/results/, not from copies.

* Every ``benchmarks/results/*.png`` is added to the site as ``results/<name>.png``, so a
  page shows it with ``![...](results/per_yield.png)`` and the strict build checks the
  link.
* A line ``<!-- results: per_yield.md -->`` in a page is replaced by that results file,
  its headings moved down three levels so that they sit below the page's own sections
  (and out of its table of contents, which shows levels 1 to 3).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
INCLUDE = re.compile(r"^<!-- results: (?P<name>[\w.-]+\.md) -->$", re.MULTILINE)
HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)


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
            f"(python benchmarks/{path.stem}.py) or remove its <!-- results: --> line"
        )
    text = path.read_text(encoding="utf-8")
    return HEADING.sub(lambda h: "#" * min(len(h[1]) + 3, 6) + " ", text)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each ``<!-- results: NAME.md -->`` line with that results file."""
    return INCLUDE.sub(_results, markdown)
