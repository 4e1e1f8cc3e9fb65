"""``python -m unfoldgen.reproduce STUDY [--smoke] [--out DIR] [--runs DIR] [--quiet]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unfoldgen.reproduce import deblur, logistic, mismatch, report, rpca, sparse
from unfoldgen.reproduce.common import RESULTS, RUNS, Run

STUDIES = ("sparse", "rpca", "mismatch", "logistic", "deblur", "report", "all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unfoldgen.reproduce", description=__doc__)
    parser.add_argument("study", choices=STUDIES, help="which study to run; report rewrites docs/results.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few steps (what the tests run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON and plots")
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder of the training runs (reused when finished)")
    parser.add_argument("--quiet", action="store_true")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    run = Run(args.out, args.runs, "smoke" if args.smoke else "full", tuple(argv), args.quiet)
    lista_scale = sparse.SMOKE if args.smoke else sparse.FULL
    rpca_scale = rpca.SMOKE if args.smoke else rpca.FULL
    if args.study in ("sparse", "all"):
        for setting in sparse.SETTINGS:
            sparse.run_setting(setting, lista_scale, run)
    if args.study in ("mismatch", "all"):
        mismatch.study(lista_scale, run)
    if args.study in ("rpca", "all"):
        rpca.study(rpca_scale, run)
    if args.study in ("logistic", "all"):
        logistic.study(logistic.SMOKE if args.smoke else logistic.FULL, run)
    if args.study in ("deblur", "all"):
        deblur.study(deblur.SMOKE if args.smoke else deblur.FULL, run)
    if args.study in ("report", "all"):
        page = report.write(args.out)
        run.log(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
