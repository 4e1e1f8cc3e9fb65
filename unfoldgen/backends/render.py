"""The Jinja2 environment: all emitted source goes through the templates in ``templates/``."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import jinja2

from unfoldgen import __version__
from unfoldgen.resources import bundled


def templates_dir() -> Path:
    """The bundled templates (override with ``UNFOLDGEN_TEMPLATES``)."""
    override = os.environ.get("UNFOLDGEN_TEMPLATES")
    return Path(override) if override else bundled("templates")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, **context: object) -> str:
    text = environment().get_template(template).render(version=__version__, **context)
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(without_unused_imports(lines, OPTIONAL_IMPORTS)) + "\n"


# Modules that templates import whenever the emitted code might need them (``math.inf`` bounds,
# ``math.sqrt`` in scalar steps): the import is dropped where the rendered body never reads them.
OPTIONAL_IMPORTS = ("math",)


def without_unused_imports(lines: list[str], modules: tuple[str, ...]) -> list[str]:
    body = "\n".join(line for line in lines if not line.startswith("import "))
    unused = {f"import {m}" for m in modules if not re.search(rf"(?<![.\w]){m}\.", body)}
    kept: list[str] = []
    for line, following in zip(lines, [*lines[1:], None]):
        if line in unused:
            continue
        if not line and kept and kept[-1] == "" and following is not None and following.startswith("import "):
            continue  # the blank line that separated a dropped import group
        kept.append(line)
    return kept
