"""The command line as typed: every command, walked from the Typer app (so a new command is covered without a
line here), answers a command line it cannot run with its usage line and one sentence, exit status 2, and
never a traceback; every number it takes has a range."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

# commands that do their work with no argument at all (a listing, the demo, the web app): not run bare here
RUN_BARE = {"dataset formats", "demo", "serve"}


def leaf_commands() -> dict[str, object]:
    """Every command the app registers, by its words ("dataset inspect", "train" ...), as click commands."""
    import typer.main

    from masksmith.cli import app

    def walk(command, words=()):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, (*words, name))
        else:
            yield " ".join(words), command

    return dict(walk(typer.main.get_command(app)))


COMMANDS = leaf_commands()


def number_options(command) -> list:
    return [p for p in command.params if p.param_type_name == "option"
            and p.type_descriptor.annotation in (int, float)]


def bad_value(command) -> list[str]:
    """A value this command's parser must refuse: a number out of range, a value for a flag that takes none,
    or an argument it does not take."""
    numbers = number_options(command)
    if numbers:
        return [numbers[0].opts[0], "nan"]
    flags = [p for p in command.params if p.param_type_name == "option" and p.type_descriptor.annotation is bool
             and p.is_flag and not p.secondary_opts]
    if flags:
        return [f"{flags[0].opts[0]}=maybe"]
    return ["an-extra-argument"]


def required_args(command) -> list[str]:
    """Placeholder values for the command's required arguments (parsing stops before any is used)."""
    return ["x" for p in command.params if p.param_type_name == "argument" and p.required]


def assert_usage_error(code: int, out: str, err: str, words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (words, code, out, err)
    assert "Traceback" not in out + err, words
    assert len(lines) == 2 and lines[0].startswith("Usage: masksmith ") and lines[1].startswith("error: "), \
        (words, err)
    assert sum(line.startswith("Usage:") for line in (out + err).splitlines()) == 1, words


def test_the_walk_finds_every_command() -> None:
    assert {"dataset inspect", "dataset convert", "train", "evaluate", "predict", "export", "recolor", "cluster",
            "rank", "serve"} <= set(COMMANDS)
    assert set(COMMANDS) >= RUN_BARE


@pytest.mark.parametrize("words", sorted(COMMANDS))
def test_every_command_answers_a_wrong_command_line_with_usage_and_one_sentence(words: str, monkeypatch,
                                                                               capsys) -> None:
    command = COMMANDS[words]
    argv = words.split()
    code, out, err = run_cli(monkeypatch, capsys, *argv, "--help")
    assert code == 0 and "Usage: masksmith " + words in out and "Traceback" not in out + err
    code, out, err = run_cli(monkeypatch, capsys, *argv, *required_args(command), "--no-such-option")
    assert_usage_error(code, out, err, f"{words} --no-such-option")
    assert "no such option: --no-such-option" in err
    code, out, err = run_cli(monkeypatch, capsys, *argv, *required_args(command), *bad_value(command))
    assert_usage_error(code, out, err, f"{words} {bad_value(command)}")
    if words not in RUN_BARE:
        code, out, err = run_cli(monkeypatch, capsys, *argv)
        assert_usage_error(code, out, err, f"{words} (no arguments)")


def test_every_numeric_option_has_a_range() -> None:
    """nan, inf and absurd numbers are refused by the parser: every int and float option declares min and max
    (a number outside [min, max], nan included, is never accepted)."""
    unbounded = [f"{words} {p.opts[0]}" for words, command in COMMANDS.items() for p in number_options(command)
                 if p.min is None or p.max is None]
    assert unbounded == []


@pytest.mark.parametrize(("args", "sentence"), [
    (["recolor", "m", "p", "--hue-shift", "nan"], "--hue-shift must be a number from -360 to 360, not nan."),
    (["cluster", "p", "--position-weight", "1e308"], "--position-weight must be a number from 0 to 100, not 1e308."),
    (["cluster", "p", "--k", "0"], "--k must be a whole number from 1 to 64, not 0."),
    (["predict", "m", "p", "--opacity", "-inf"], "--opacity must be a number from 0 to 1, not -inf."),
    (["colors", "m", "p", "--k", "2.5"], "--k must be a whole number from 1 to 16, not 2.5."),
    (["serve", "--port", "70000"], "--port must be a whole number from 1 to 65535, not 70000."),
])
def test_numbers_out_of_range_are_named_with_their_range(args: list[str], sentence: str, monkeypatch,
                                                         capsys) -> None:
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert_usage_error(code, out, err, " ".join(args))
    assert err.strip().splitlines()[1] == f"error: {sentence}"


@pytest.mark.parametrize(("args", "lines"), [
    ([], ["Usage: masksmith [OPTIONS] COMMAND [ARGS]...",
          "error: no command given; give one of: dataset, train, evaluate, report, predict, extract, export, "
          "recolor, paste, cluster, colors, rank, demo, serve (masksmith --help says what each does)."]),
    (["dataset"], ["Usage: masksmith dataset [OPTIONS] COMMAND [ARGS]...",
                   "error: no dataset command given; give one of: inspect, formats, convert, add-unlabelled, split, "
                   "tile, stitch, preview, sample (masksmith dataset --help says what each does)."]),
    (["traim"], ["Usage: masksmith [OPTIONS] COMMAND [ARGS]...",
                 "error: no such command 'traim'. Did you mean 'train'?"]),
    (["cluster", "p", "--k"], ["Usage: masksmith cluster [OPTIONS] {photos}...",
                               "error: option '--k' requires an argument."]),
    (["train"], ["Usage: masksmith train [OPTIONS] [data]",
                 "error: give the data set to train on (or --resume RUN, or --config FILE)."]),
])
def test_no_command_an_unknown_one_and_a_missing_value(args: list[str], lines: list[str], monkeypatch,
                                                       capsys) -> None:
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and out == "" and err.strip().splitlines() == lines


def test_a_usage_error_from_the_installed_command_is_two_lines_and_status_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "masksmith.cli", "cluster", "photo.jpg", "--k", "0"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["Usage: masksmith cluster [OPTIONS] {photos}...",
                                        "error: --k must be a whole number from 1 to 64, not 0."]
