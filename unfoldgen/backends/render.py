"""The Jinja2 environment: all emitted source goes through the templates in ``templates/``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import jinja2

from unfoldgen import __version__


def templates_dir() -> Path:
    """``templates/`` at the repository root (override with ``UNFOLDGEN_TEMPLATES``)."""
    override = os.environ.get("UNFOLDGEN_TEMPLATES")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "templates"


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
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
