"""``python -m core.serving --model DIR [--host 127.0.0.1] [--port 8080] [--log-url URL]``.

Runs the prediction service on uvicorn with one worker. On SIGTERM (or Ctrl-C) uvicorn stops
accepting connections, lets in-flight requests finish (up to ``serve_drain_timeout_s``), then
the app flushes the prediction log and the process exits.

Limits, policies and the bearer token come from the ``SHIPML_SERVE_*`` environment variables
(see ``core.config.Settings``); the token is never accepted on the command line, where other
users of the machine could read it from the process list.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.serving", description="Serve one exported ShipML model.")
    p.add_argument("--model", required=True, help="a model folder written by export (model.json, model.joblib)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--log-url", default=None,
                   help="SQLAlchemy URL for the prediction log (default: SHIPML_SERVE_LOG_URL, "
                        "else a SQLite file under the workspace)")
    p.add_argument("--access-log", action="store_true", help="log every request line (costs throughput)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_dir = Path(args.model)
    if not (model_dir / "model.json").is_file():
        print("error: --model must be a folder holding model.json and model.joblib", file=sys.stderr)
        return 2
    import uvicorn

    from core.config import get_settings
    from core.serving.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    app = create_app(model_dir, settings, log_url=args.log_url)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        access_log=args.access_log,
        timeout_graceful_shutdown=int(settings.serve_drain_timeout_s),
        server_header=False,
        log_level="info",
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
