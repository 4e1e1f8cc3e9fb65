"""Where the files that ship with unfoldgen live: the Jinja2 templates and the bundled specs.

In the repository they are top-level folders (``templates/``, ``specs/``), their source. A wheel
carries them inside the package (``unfoldgen/templates``, ``unfoldgen/specs``; pyproject's
``package-dir``), so an installed unfoldgen needs nothing outside ``site-packages``. A source
checkout and an editable install read the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def bundled(folder: str) -> Path:
    """The folder ``templates`` or ``specs``: inside the installed package, else at the root of
    the source checkout."""
    installed = PACKAGE / folder
    return installed if installed.is_dir() else PACKAGE.parent / folder


def bundled_spec(name: str) -> Path:
    """A bundled spec by name, e.g. ``bundled_spec("lista")`` for ``specs/lista.yaml``."""
    return bundled("specs") / f"{name}.yaml"
