"""A griffe extension for the API reference: safegen's docstrings in Markdown.

safegen's docstrings are Google style, with two habits that Markdown does not read:
Sphinx roles for cross-references (``:func:`safegen.guard```) and doctest examples
(``>>> ...`` lines, which Markdown takes for nested quotes). This rewrites each
docstring before mkdocstrings parses it: a role becomes a link when its target is a
documented public name (inline code otherwise), and each doctest block is fenced as
``pycon``. The docstrings themselves stay as they are (``help()`` reads them).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|exc|mod|data|obj):`(~?)([\w.]+)`")
# Modules with a section of their own in api.md, besides the names in safegen.__all__.
_PUBLIC_MODULES = ("safegen.testing",)


def _public(target: str) -> str | None:
    import safegen

    if target.startswith("safegen."):
        name = target.removeprefix("safegen.")
        if name in safegen.__all__ or target.startswith(_PUBLIC_MODULES):
            return target
        return None
    if target in safegen.__all__:
        return f"safegen.{target}"
    return None


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    shown = target.rsplit(".", 1)[-1] if tilde else target
    public = _public(target)
    return f"[`{shown}`][{public}]" if public else f"`{shown}`"


def _fence_doctests(text: str) -> str:
    """Fence each run of doctest lines (``>>>`` up to the next blank line) as pycon."""
    out: list[str] = []
    in_fence = in_doctest = False
    indent = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_doctest and not stripped:
            out.append(f"{indent}```")
            in_doctest = False
        elif not in_fence and not in_doctest and stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append(f"{indent}```")
    return "\n".join(out)


class SafegenDocstrings(griffe.Extension):
    """Rewrite roles and fence doctests in every docstring before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite one object's docstring."""
        if obj.docstring is not None:
            obj.docstring.value = _fence_doctests(_ROLE.sub(_role, obj.docstring.value))
