"""The `masksmith` command: a thin front over the library (mostly `masksmith.service`), one module per command
group (dataset, train, predict, apps, serve), with what they print in `render`, the options they share in
`options`, usage errors in `usage` and interruptions in `stops`. Every command calls the same library functions
the Python API and the web app offer.

How a command ends: 0 when it did its work; 2 with the usage line and one sentence when the command line
cannot be run as typed, or with one `error:` line when the library refuses (a MasksmithError, a full disk);
128 + the signal (130 Ctrl-C, 143 SIGTERM) with one `interrupted` line saying what was finished and how to go
on. Never a traceback for any of these."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

import typer

from masksmith.cli import apps, dataset, predict, render, serve, train
from masksmith.cli.stops import STOPS
from masksmith.cli.usage import PROG, usage_error
from masksmith.core.errors import MasksmithError, TrainingInterrupted, stop_signal

app = typer.Typer(add_completion=False,
                  help="masksmith: from annotated photos to a trained segmentation model and usable results.")
app.add_typer(dataset.commands, name="dataset")
for group in (train, predict, apps, serve):
    app.add_typer(group.commands)  # their commands at the top level: masksmith train, masksmith predict ...


def main(argv: Sequence[str] | None = None) -> None:
    """Run one command line (sys.argv by default) and exit with its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    with STOPS:
        code = run(args)
    sys.exit(code)


def run(args: list[str]) -> int:
    """Run `args` as the command line; print how it ended when it did not end well; return the exit status."""
    try:
        result = app(args, prog_name=PROG, standalone_mode=False)
    except TrainingInterrupted as exc:  # what was kept, naming the signal, and how to resume
        return _say(f"interrupted: {render.cli_message(exc)}", 128 + exc.signum)
    except KeyboardInterrupt as exc:
        signum = stop_signal(exc) or signal.SIGINT
        return _say(STOPS.line(signum), 128 + signum)
    except typer.TyperException as exc:  # the command line as typed cannot be run
        if getattr(exc, "exit_code", 2) != 2:
            return _say(f"error: {exc.format_message()}", exc.exit_code)
        usage, sentence = usage_error(exc, typer.main.get_command(app), args)
        print(usage.rstrip(), file=sys.stderr)
        return _say(f"error: {sentence}", 2)
    except MasksmithError as exc:
        if STOPS.signum is not None:  # an error the interruption caused (see below)
            return _say(STOPS.line(), 128 + STOPS.signum)
        return _say(f"error: {render.cli_message(exc)}", 2)
    except OSError as exc:  # a full disk, a read-only folder: one line with the path and errno, no traceback
        from masksmith.core.outputs import os_error

        return _say(f"error: {os_error(exc, action='read or write')}", 2)
    except typer.Abort:  # end of input at a prompt
        return _say("aborted", 1)
    except Exception:
        if STOPS.signum is None:
            raise
        # the signal's KeyboardInterrupt can surface as another error when it lands inside C code that
        # catches exceptions (numpy, Cython): the signal is what ended the command
        return _say(STOPS.line(), 128 + STOPS.signum)
    if result == 130:  # Typer's answer to a KeyboardInterrupt it caught: the signal handler knows which
        signum = STOPS.signum or signal.SIGINT
        return _say(STOPS.line(signum), 128 + signum)
    return result if isinstance(result, int) else 0


def _say(line: str, code: int) -> int:
    print(line, file=sys.stderr)
    return code
