"""How the compiler spells the names it makes up: around the spec's names, which keep theirs."""

from __future__ import annotations

from collections.abc import Container


def around(name: str, taken: Container[str], also: tuple[str, ...] = ()) -> str:
    """``name``, with '_' appended until neither it nor ``name + suffix`` for each suffix in
    ``also`` is ``taken``: ``around("k", {"k"}) == "k_"``."""
    while name in taken or any(name + suffix in taken for suffix in also):
        name += "_"
    return name
