"""`masksmith serve`: the app under uvicorn, with the access token when it is served beyond this machine."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from masksmith.core.errors import MasksmithError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve_app(data_dir: Path, host: str = "127.0.0.1", port: int = 8765, load_sample: bool = True,
              echo: Callable[[str], None] = print) -> None:
    import uvicorn

    from masksmith.web.app import create_app

    if not 0 < port < 65536:
        raise MasksmithError(f"port {port} is not a port number (1-65535).")
    token = None if host in LOOPBACK_HOSTS else secrets.token_urlsafe(18)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if load_sample:
        echo("preparing the data folder (the first start adds the built-in sample data set) ...")
    app = create_app(data_dir, host=host, token=token, load_sample=load_sample)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    address = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}/"
    echo(f"masksmith is serving {data_dir} at {address}" + (f"?token={token}" if token else ""))
    if token:
        echo("this address is reachable from other machines: the token above is needed once per browser "
             "(it is printed only now).")
    echo("stop it with Ctrl-C; trainings under way go on and are found again at the next start.")
    closing = app.state.closing

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # a stop ends the live pages' event streams at once
            closing.set()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    Server(config).run()
