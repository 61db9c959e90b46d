"""The `masksmith` command: a thin front over the library (mostly `masksmith.service`), one module per command
group (dataset, train, predict, apps, serve), with what they print in `render` and the options they share in
`options`. Every command calls the same library functions the Python API and the web app offer."""

from __future__ import annotations

import sys

import typer

from masksmith.cli import apps, dataset, predict, render, serve, train
from masksmith.core.errors import MasksmithError, TrainingInterrupted

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="masksmith: from annotated photos to a trained segmentation model and usable results.")
app.add_typer(dataset.commands, name="dataset")
for group in (train, predict, apps, serve):
    app.add_typer(group.commands)  # their commands at the top level: masksmith train, masksmith predict ...


def main() -> None:
    try:
        app(standalone_mode=False)
    except TrainingInterrupted as exc:  # Ctrl-C during training: what was kept and how to resume
        print(f"interrupted: {render.cli_message(exc)}", file=sys.stderr)
        sys.exit(130)
    except MasksmithError as exc:
        print(f"error: {render.cli_message(exc)}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # a full disk, a read-only folder: one line with the path and errno, no traceback
        from masksmith.core.outputs import os_error

        print(f"error: {os_error(exc, action='read or write')}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # click's usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
