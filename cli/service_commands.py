"""The commands that run no task: ``sandbox`` (the local stand-in API) and ``key``."""

from __future__ import annotations

import sys

from ..api import errors
from ..api.env import BASE_URL_ENV, KEY_ENV
from .context import PROG, Context
from .exit_codes import EXIT_OK


def cmd_sandbox(ctx: Context) -> int:
    import errno
    import logging

    from ..sandbox import Sandbox
    from ..sandbox.api_handler import LEDGER_PATH
    from ..sandbox.cli_args import config_from_args

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config, faults = config_from_args(ctx.args)
    try:
        sb = Sandbox(config, faults).start()
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise errors.InvalidRequestError(
                f"Port {config.port} on 127.0.0.1 cannot be used ({exc.strerror}): another "
                "sandbox may be running there. Pick another with --port, or --port 0 for any "
                "free port.",
                field="port",
            ) from None
        raise
    key = next(iter(config.keys))
    with ctx.stop.installed():
        print(
            "Grok Imagine sandbox running (Ctrl-C to stop). Point the nodes or the CLI at it with:"
        )
        print(f"  {BASE_URL_ENV}={sb.base_url} {KEY_ENV}={key}")
        print(f"Its ledger (creates, credits, balance per key): GET {sb.base_url}{LEDGER_PATH}")
        sys.stdout.flush()
        try:
            while not ctx.stop.event.wait(0.2):
                pass
        finally:
            sb.stop()
    return EXIT_OK


def cmd_key(ctx: Context) -> int:
    from ..api import config

    path = config.resolve_key_file()
    action = ctx.args.action
    if action == "set":
        if sys.stdin.isatty():
            import getpass

            key = getpass.getpass("API key (typed input is not shown): ")
        else:
            key = sys.stdin.readline()
        if not key.strip():
            raise errors.MissingKeyError(
                "No key was given on standard input: type it at the prompt, or pipe it in "
                f"(`{PROG} key set < keyfile`).",
                advice=errors.Advice.NONE,
            )
        config.write_key_file(path, key)
        print(f"Key saved to {path} (mode 0600).")
    elif action == "clear":
        if not path.exists():
            print(f"No key file at {path}: nothing to remove.")
            return EXIT_OK
        path.unlink()
        print(f"Removed {path}.")
    else:
        settings = config.load_settings()
        print(
            f"Key set ({settings.masked_key}) from {settings.key_source}; "
            f"API at {settings.base_url}."
        )
    return EXIT_OK
