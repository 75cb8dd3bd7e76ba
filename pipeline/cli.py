"""The command line: ``python -m pipeline STAGE -c CONFIG`` (or the ``cnncodes`` script).

Exit codes: 0 success, 1 failure, 2 usage or configuration error. Failures caused by
the user's input end with one line that says what to fix; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from features import StoreError, WeightsUnavailable

from .config import ConfigError, load_config
from .stages import STAGES

__all__ = ["main", "build_parser"]

EXAMPLES = """examples:
  python -m pipeline run -c examples/demo.toml
  python -m pipeline extract -c my.toml --set features.weights=random --set features.image_size=64
  python -m pipeline fit -c my.toml --set 'classifiers.models=["logreg"]'
"""

USER_ERRORS = (FileNotFoundError, NotADirectoryError, StoreError, WeightsUnavailable, ValueError, OSError)
"""Failures that come from the user's files, settings or network: one line, exit 1."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", required=True, help="TOML config file (see examples/)")
    common.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (a TOML value, or a bare word); repeatable")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress lines")
    common.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Frozen ImageNet CNN codes at several depths, cached in HDF5, "
                    "compared across classical classifiers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    helps = {
        "extract": "compute CNN codes into the HDF5 cache (cached codes are reused)",
        "fit": "fit every classifier on every backbone x tap x pooling and score it on test",
        "report": "write results.csv, report.md and the plot; print the results table",
        "run": "extract, fit and report in order",
    }
    for name, text in helps.items():
        commands.add_parser(name, parents=[common], help=text, description=text, epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr, force=True)
    stages = list(STAGES) if args.command == "run" else [args.command]
    try:
        config = load_config(args.config, args.set)
        for stage in stages:
            started = time.perf_counter()
            STAGES[stage](config, progress=not args.quiet)
            logging.getLogger(__name__).info("%s: done in %.1f s", stage, time.perf_counter() - started)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; cached codes and finished outputs are kept", file=sys.stderr)
        return 1
    return 0
