"""`masksmith demo` and `masksmith serve`: the whole path on the sample set, and the local web app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from masksmith.cli.render import console
from masksmith.cli.stops import STOPS, on_stop, partial
from masksmith.core.errors import Stopped

commands = typer.Typer()


@commands.command("demo")
def demo(out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("demo_output"),
         ) -> None:
    """The whole path on the built-in sample set: build it, inspect it, write its masks and a preview."""
    from masksmith.demo import run_demo

    on_stop(partial(out))
    run_demo(out, console)


@commands.command("serve")
def serve(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Folder for the app's data sets, runs and database."
                                           )] = Path("~/.local/share/masksmith/web"),
    host: Annotated[str, typer.Option(help="Address to serve on. 127.0.0.1 keeps it on this machine; any other "
                                           "needs the access token printed at start.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8765,
    no_sample: Annotated[bool, typer.Option("--no-sample", help="Do not add the built-in sample data set on "
                                             "the first start.")] = False,
) -> None:
    """The local web app: upload a zip, check it, train with a time budget and watch it learn, then try the
    model on your own photos. Opens at http://127.0.0.1:8765/."""
    from masksmith.web.serve import serve_app

    on_stop("the web app stopped; trainings under way go on, and masksmith serve finds them again.")
    serve_app(data_dir.expanduser(), host=host, port=port, load_sample=not no_sample, echo=console.print)
    if STOPS.signum is not None:  # uvicorn stops on the signal and swallows it: end the way every command does
        raise Stopped(STOPS.signum)
