"""The one error type a user sees: a problem in their spec, located and explained."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpecError(Exception):
    """A spec is invalid. Formatted as ``file: key.path (line N): message`` plus a hint.

    Every stage raises this (never a bare exception) for problems the user can fix, so the
    CLI can print one clean message and exit with code 2.
    """

    message: str
    key_path: str | None = None
    hint: str | None = None
    line: int | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def located(self, file: str | None = None, line: int | None = None) -> SpecError:
        """Fill in the file and line where they are not yet known."""
        if self.file is None and file is not None:
            self.file = file
        if self.line is None and line is not None:
            self.line = line
        return self

    def format(self) -> str:
        where = self.file or "<spec>"
        if self.key_path:
            where += f": {self.key_path}"
        if self.line is not None:
            where += f" (line {self.line})"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.format()


class SpecWarning(UserWarning):
    """A spec that compiles but probably does not do what its author wants (a classical step
    beyond the method's convergence bound). The text is located like a SpecError's; the CLI
    prints it as ``warning:`` and goes on."""


def warn(problem: SpecError, file: str | None) -> None:
    """Issue ``problem`` as a SpecWarning, located in ``file``."""
    import warnings

    warnings.warn(problem.located(file).format(), SpecWarning, stacklevel=3)
