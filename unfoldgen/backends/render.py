"""The Jinja2 environment: all emitted source goes through the templates in ``templates/``."""

from __future__ import annotations

import os
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
    """Render ``template``. A file's spelling (``g``) records which of the emitted code's own
    names its code asks for, so a template renders twice: the second time, its imports and
    aliases know everything the first one asked for (``import math`` only where it is read)."""
    compiled = environment().get_template(template)
    if "g" in context:
        compiled.render(version=__version__, **context)
    text = compiled.render(version=__version__, **context)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
