"""What a training run shows while it runs: a progress bar on a terminal, or plain log lines
(``--quiet``, or output to a file or a pipe, where a bar would leave only its last state)."""

from __future__ import annotations

import sys
from typing import Any

import click


def describe(record: dict[str, Any], layers: int) -> str:
    metric = (f"val NMSE {record['val_nmse_db']:.2f} dB" if "val_nmse_db" in record
              else f"val objective {record['val_objective']:.4g}")
    return f"layer {record['depth']}/{layers}  loss {record['loss']:.4g}  {metric}"


class Progress:
    """A bar on a terminal with the latest loss and validation metric; otherwise one line per
    validation (every ``validate_every`` steps) with the step, loss and validation metric."""

    def __init__(self, total: int, start: int, layers: int, quiet: bool, enabled: bool) -> None:
        self.total, self.layers, self.enabled = total, layers, enabled
        self.quiet = quiet or not sys.stderr.isatty()
        self.status = ""
        self.bar: Any = None
        if enabled and not self.quiet:
            self.bar = click.progressbar(length=total, label="training", show_pos=True,
                                         item_show_func=self.show, file=sys.stderr)
            self.bar.__enter__()
            self.bar.update(start)

    def show(self, _item: object) -> str:
        """The text after the bar: the latest loss and validation metric."""
        return self.status

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def record(self, step: int, record: dict[str, Any]) -> None:
        self.status = describe(record, self.layers)
        if self.enabled and self.quiet:
            click.echo(f"step {step}/{self.total}  {self.status}")

    def message(self, text: str) -> None:
        if self.enabled:
            click.echo(text, err=self.bar is not None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
