"""The command line: ``python -m pipeline COMMAND -c CONFIG`` (or the ``cnncodes`` script).

Every command is one entry of ``COMMANDS``: its help line, its own arguments and a
function of the parsed arguments and the loaded config. Exit codes: 0 success, 1 failure
caused by the user's input, files, network or disk (``features.errors.UserError``), 2 usage
or configuration error (``ConfigError``), or a run folder or feature store in use with
``--no-wait`` (``LockHeld``), 3 internal error (any other exception: a bug), 130 and 143
interrupted (SIGINT, SIGTERM: finished work is kept); ``status`` exits 0 when everything is
up to date and 1 when something would run, like ``make -q``. A user error ends with one
line that says what to fix; an internal error says it is one, names the exception and
points to the traceback: ``--debug`` shows it, and so does the run's log file.

Only what a command needs is imported: ``--help``, ``status``, ``--dry-run``, ``clean``
and a run with nothing to do never load torch, torchvision or scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import features
from features.errors import UserError
from features.locks import LockHeld

from .api import bring_up_to_date
from .config import Config, ConfigError, load_config
from .runner import LOG_NAME, Stage, clean, plan, run_lock, run_log
from .stages import STAGES, predict_stage

__all__ = ["COMMANDS", "Command", "main", "build_parser"]

EXAMPLES = """examples:
  python -m pipeline run -c examples/demo.toml
  python -m pipeline run -c examples/demo.toml --dry-run      (what would run, and why)
  python -m pipeline status -c examples/demo.toml
  python -m pipeline fit -c my.toml --set 'classifiers.models=["logreg"]' --force
  python -m pipeline extract -c my.toml --set features.weights=random --set features.image_size=64
  python -m pipeline clean -c my.toml fit                    (clean --cache also drops the feature files)
  python -m pipeline predict -c my.toml new-photos/            (the run's best model; --model for another)
  python -m pipeline taps resnet50 --image-size 96
  python -m pipeline verify cache/*.h5
"""

@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, what it does, and its own arguments.

    ``run(args, config)`` returns an exit code or None (0); ``config`` is the loaded
    ``-c`` file, or None for a command declared with ``config=False``. ``logged``: the
    command appends to the run's log file (unless ``--dry-run``), a failure's traceback
    included.
    """

    help: str
    run: Callable[[argparse.Namespace, Config | None], int | None]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    config: bool = True
    logged: bool = False


def _command_line(args: argparse.Namespace) -> str:
    return f"python -m pipeline {shlex.join(args.argv)}"


def _logged(args: argparse.Namespace, config: Config):
    """The run's log file records this command and what happens during it."""
    return run_log(config, _command_line(args))


def _locked(args: argparse.Namespace, config: Config):
    """The run folder is this command's while it changes it (``--no-wait``: exit 2 if it is another's)."""
    return run_lock(config, _command_line(args), wait=not args.no_wait)


def _lock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true",
                        help="if another process is running in the run folder or writing a feature store this "
                             "run writes, exit 2 instead of waiting for it")


def _stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="run the stage(s) asked for even when up to date")
    parser.add_argument("-n", "--dry-run", action="store_true", help="say what would run and why, run nothing")
    _lock_arguments(parser)


def _bring_up_to_date(args: argparse.Namespace, config: Config, stages: dict[str, Stage], targets: list[str]) -> None:
    """Run the stale stages among ``targets`` and the stages they read from, like make.

    ``args`` carries ``--force`` (rerun the targets), ``--dry-run`` (only say what would
    run and why) and ``--quiet``. A command for a stage outside ``STAGES`` (one built
    from its own arguments) passes ``{**STAGES, name: stage}``.
    """
    force = targets if args.force else ()
    if args.dry_run:
        steps = plan(config, stages, targets, force)
        for step in steps:
            print(f"would run {step}" if step.runs else str(step))
        if not any(step.runs for step in steps):
            print("nothing to do")
        return
    bring_up_to_date(config, stages, targets, _command_line(args), force, not args.quiet, wait=not args.no_wait)


def _run_stages(args: argparse.Namespace, config: Config) -> None:
    _bring_up_to_date(args, config, STAGES, list(STAGES) if args.command == "run" else [args.command])


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the answer as JSON, for programs")


def _status(args: argparse.Namespace, config: Config) -> int:
    steps = plan(config, STAGES, list(STAGES))
    if args.json:
        print(json.dumps({
            "up_to_date": not any(step.runs for step in steps),
            "stages": [{"stage": step.stage.name, "state": step.state, "reasons": step.reasons,
                        "finished": (step.stamp or {}).get("finished"), "seconds": (step.stamp or {}).get("seconds")}
                       for step in steps],
        }, indent=2))
    else:
        for step in steps:
            print(step)
    return 1 if any(step.runs for step in steps) else 0


def _clean_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", nargs="?", choices=list(STAGES), help="the stage to clean (default: all)")
    parser.add_argument("--cache", action="store_true",
                        help="also delete the feature files this run uses (shared with other runs)")
    _lock_arguments(parser)


def _clean(args: argparse.Namespace, config: Config) -> None:
    # everything: the stages' outputs and the run's default predictions.csv (not an --out elsewhere)
    stages = [STAGES[args.stage]] if args.stage else [*STAGES.values(), predict_stage([])]
    with _locked(args, config), _logged(args, config):
        clean(config, stages, cache=args.cache)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return int(value)


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files, or folders (searched recursively)")
    parser.add_argument("--model", help="a fitted .joblib model (default: the run's best, from results.json)")
    parser.add_argument("--out", help="the CSV to write (default: predictions.csv in the run folder)")
    parser.add_argument("--top-k", type=_positive, default=5, help="classes listed per image, best first (default 5)")
    _stage_arguments(parser)


def _predict(args: argparse.Namespace, config: Config) -> None:
    stage = predict_stage(args.images, args.model, args.out, args.top_k)
    _bring_up_to_date(args, config, {**STAGES, stage.name: stage}, [stage.name])


def _taps_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backbone", help=f"{', '.join(features.BACKBONES)}, any torchvision classification "
                                         f"model by name, or timm/<name> (the timm extra)")
    parser.add_argument("--image-size", type=int, default=224, help="square input size (default 224)")
    parser.add_argument("--all", action="store_true", help="every graph node, not only the taps worth using")


_LISTED_POOLINGS = ("avg", "avgmax", "cls", "cls+avg", "grid2")


def _taps(args: argparse.Namespace, config: None) -> None:
    taps = features.list_taps(args.backbone, args.image_size, "all" if args.all else "curated")
    defaults = set(features.get_backbone(args.backbone).default_taps)
    rows = [("tap", "graph node", "layout", f"output at {args.image_size} px", *_LISTED_POOLINGS, "none")]
    for tap in taps:
        widths = [tap.width(pooling) for pooling in (*_LISTED_POOLINGS, features.MAP)]
        rows.append((tap.name + (" *" if tap.name in defaults else ""), tap.node, str(tap.layout),
                     " x ".join(map(str, tap.output_shape)) or "-",
                     *(str(width) if width is not None else "-" for width in widths[:-1]),
                     " x ".join(map(str, tap.shape)) if widths[-1] is not None else "-"))
    columns = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, columns)).rstrip())
    print(f"\n* a default tap. Columns avg .. none: the features per image of each pooling ('-': not for "
          f"this tap){'' if args.all else '; --all lists every graph node'}.")


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stores", nargs="+", metavar="STORE", help="feature files (.h5) to check")


def _verify(args: argparse.Namespace, config: None) -> int:
    damaged = 0
    for store in args.stores:
        problems = features.verify_store(store)
        print(f"{store}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  {problem}")
        damaged += bool(problems)
    return 1 if damaged else 0


COMMANDS: dict[str, Command] = {
    "extract": Command("compute CNN codes into the HDF5 cache (cached codes are reused)",
                       _run_stages, _stage_arguments, logged=True),
    "fit": Command("fit every classifier on every backbone x tap x pooling and score it on test "
                   "(extracts first if that is stale)", _run_stages, _stage_arguments, logged=True),
    "report": Command("write results.csv, report.md and the plots; print the results table "
                      "(runs stale stages before it first)", _run_stages, _stage_arguments, logged=True),
    "run": Command("every stale stage in order: extract, fit, report", _run_stages, _stage_arguments, logged=True),
    "status": Command("show each stage as up to date, stale (and why) or missing; exit 0 when all are up to "
                      "date, 1 when something would run", _status, _status_arguments),
    "clean": Command("remove a stage's outputs and stamp, or every stage's and predictions.csv (the feature cache "
                     "only with --cache)",
                     _clean, _clean_arguments, logged=True),
    "predict": Command("classify new images with the run's best model (or --model): a CSV and a table "
                       "(fits first if that is stale)", _predict, _predict_arguments, logged=True),
    "taps": Command("list a backbone's useful taps (--all: every graph node) with their layouts, output "
                    "shapes and pooled widths (no weights needed)",
                    _taps, _taps_arguments, config=False),
    "verify": Command("check feature files: layout, row counts, checksums, finite codes; exit 1 on any problem",
                      _verify, _verify_arguments, config=False),
}
"""The subcommands, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress lines")
    common.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    with_config = argparse.ArgumentParser(add_help=False, parents=[common])
    with_config.add_argument("-c", "--config", required=True, help="TOML config file (see examples/)")
    with_config.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                             help="override a config value (a TOML value, or a bare word); repeatable")
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Frozen ImageNet CNN codes at several depths, cached in HDF5, "
                    "compared across classical classifiers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, parents=[with_config if command.config else common], help=command.help,
                                  description=command.help, epilog=EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        command.arguments(sub)
    return parser


def _console_logging(quiet: bool) -> None:
    """Stage lines on standard error; the root level stays at INFO for the run's log file."""
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[console], force=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it keeps its finished work as on Ctrl-C."""


def _terminated(signum, frame) -> None:
    raise Terminated()


INTERNAL_ERROR = 3
"""The exit code of a failure that no ``UserError`` explains: a bug."""

INTERRUPTED = {KeyboardInterrupt: ("SIGINT", 130), Terminated: ("SIGTERM", 143)}
"""What stopped the command, and its exit code: 128 + the signal's number, as shells expect."""


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for the log file
    _console_logging(args.quiet)
    command = COMMANDS[args.command]
    if features.distributed_rank()[1] > 1 and args.command != "extract":
        print(f"error: under torchrun only `extract` runs on several processes; run `{args.command}` as one "
              f"process (python -m pipeline {args.command} ...)", file=sys.stderr)
        return 2
    config = None
    try:
        config = load_config(args.config, args.set) if command.config else None
        return command.run(args, config) or 0
    except (ConfigError, LockHeld) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UserError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        name, code = INTERRUPTED[type(error)]
        print(f"interrupted ({name}); cached codes and finished outputs are kept", file=sys.stderr)
        return code
    except Exception as error:  # noqa: BLE001 - not the user's doing: a bug, said as such
        if args.debug:
            raise
        logged = command.logged and config is not None and not getattr(args, "dry_run", False)
        print(_internal_error(error, Path(config.run.dir) / LOG_NAME if logged else None), file=sys.stderr)
        return INTERNAL_ERROR


def _internal_error(error: Exception, log: Path | None) -> str:
    """What a failure that is not the user's doing says: that it is a bug, what was raised,
    and where its traceback is (``--debug``, and ``log`` when the run's log recorded it)."""
    return (f"internal error (a bug in cnn-codes, not in your input): {type(error).__name__}: {error}\n"
            f"  rerun with --debug for the traceback{f' (also in {log})' if log else ''}, and please report it")
