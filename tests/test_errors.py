"""User errors apart from bugs: every exception class derives from ``CnnCodesError``, the
user's from ``UserError`` and the built-in class Python callers catch; the command line
prints a user error in one line (exit 1, a setting or a lock 2) and anything else as an
internal error (exit 3) that points to the traceback."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import pipeline.extract
from features.errors import CnnCodesError, UserError
from pipeline.cli import INTERNAL_ERROR, main

ROOT = Path(__file__).resolve().parents[1]
NOT_ERRORS = {"pipeline.cli.Terminated"}
"""Exceptions that are no failure: SIGTERM, raised as a KeyboardInterrupt."""


def _project_exceptions() -> list[type]:
    found = []
    for path in sorted(path for package in ("features", "classifiers", "pipeline")
                       for path in (ROOT / package).glob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if name == "pipeline.__main__":
            continue
        module = importlib.import_module(name)
        found += [value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == name]
    return found


def test_every_exception_of_the_project_derives_from_the_base():
    exceptions = _project_exceptions()
    assert len(exceptions) > 10
    strays = [f"{cls.__module__}.{cls.__qualname__}" for cls in exceptions
              if not issubclass(cls, CnnCodesError) and f"{cls.__module__}.{cls.__qualname__}" not in NOT_ERRORS]
    assert strays == []


@pytest.mark.parametrize("name, builtin", [
    ("features.StoreError", OSError), ("features.StoreLocked", OSError), ("features.ImageError", OSError),
    ("features.WeightsUnavailable", OSError), ("features.DatasetUnavailable", OSError),
    ("features.files.WriteError", OSError), ("classifiers.ModelFileError", OSError),
    ("pipeline.runner.RunLocked", OSError), ("pipeline.runfolder.StageInputMissing", FileNotFoundError),
    ("pipeline.ConfigError", ValueError), ("features.SettingError", ValueError), ("features.DataError", ValueError),
])
def test_user_errors_keep_the_builtin_class_that_callers_catch(name, builtin):
    module, _, attribute = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attribute)
    assert issubclass(cls, UserError) and issubclass(cls, builtin)


def test_a_user_error_is_one_line_and_exit_1(cli, write_config, tmp_path):
    code, _, err = cli("extract", "-c", write_config(f'root = "{tmp_path / "nowhere"}"'))
    assert code == 1
    assert err.splitlines()[-1].startswith(f"error: image folder {tmp_path / 'nowhere'} does not exist")
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.parametrize("bug", [RuntimeError, ValueError, FileNotFoundError, KeyError])
def test_a_bug_is_an_internal_error_with_exit_3_and_its_traceback_in_the_log(cli, config, run_dir, monkeypatch, bug):
    def broken(config, progress):
        raise bug("boom")

    monkeypatch.setattr(pipeline.extract, "extract", broken)
    code, _, err = cli("extract", "-c", config)
    assert code == INTERNAL_ERROR == 3
    shown = f"{bug.__name__}: {bug('boom')}"
    assert err.splitlines()[-2:] == [
        f"internal error (a bug in cnn-codes, not in your input): {shown}",
        f"  rerun with --debug for the traceback (also in {run_dir / 'pipeline.log'}), and please report it",
    ]
    log = (run_dir / "pipeline.log").read_text()
    assert "Traceback (most recent call last)" in log and shown in log


def test_debug_shows_a_bugs_traceback(config, monkeypatch):
    def broken(config, progress):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline.extract, "extract", broken)
    with pytest.raises(RuntimeError, match="boom"):
        main(["extract", "-c", str(config), "--debug"])


def test_a_bug_in_a_command_without_a_log_names_only_debug(cli, monkeypatch):
    import features

    def broken(*args, **kwargs):
        raise AttributeError("boom")

    monkeypatch.setattr(features, "list_taps", broken)
    code, _, err = cli("taps", "resnet18")
    assert code == 3
    assert err.splitlines() == ["internal error (a bug in cnn-codes, not in your input): AttributeError: boom",
                                "  rerun with --debug for the traceback, and please report it"]
