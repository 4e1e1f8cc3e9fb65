"""``python -m unfoldgen`` (used by ``torchrun -m unfoldgen train ...``)."""

from unfoldgen.cli import main

main()
