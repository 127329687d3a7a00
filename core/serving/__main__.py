"""``python -m core.serving --model DIR [--host 127.0.0.1] [--port 8080] [--log-url URL] [--no-compiled-trees]``.

Two versions behind one endpoint: ``--challenger DIR_B --weight-b 0.1`` (an A/B split, sticky by
request key) or ``--shadow DIR_B`` (the challenger scores every request, the champion answers);
or ``--routing FILE`` (JSON, see ``core.serving.routing``), which decides at start and is read
again on ``POST /admin/routing`` or SIGHUP, so a promotion or rollback needs no restart.

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
    ab = p.add_mutually_exclusive_group()
    ab.add_argument("--challenger", default=None, help="a second model folder for an A/B split")
    ab.add_argument("--shadow", default=None, help="a second model folder scored in shadow mode")
    p.add_argument("--weight-b", type=float, default=0.1, help="the challenger's share of keys (0-1; default 0.1)")
    p.add_argument("--routing", default=None,
                   help="a routing file (JSON) that decides what is served; re-read on POST /admin/routing or SIGHUP")
    p.add_argument("--access-log", action="store_true", help="log every request line (costs throughput)")
    p.add_argument("--no-compiled-trees", action="store_true",
                   help="LightGBM: keep the booster instead of switching to compiled trees (lleaves) once ready")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_dir = Path(args.model)
    if not (model_dir / "model.json").is_file():
        print("error: --model must be a folder holding model.json and model.joblib", file=sys.stderr)
        return 2
    second = args.challenger or args.shadow
    if second and not (Path(second) / "model.json").is_file():
        print("error: the challenger must be a folder holding model.json and model.joblib", file=sys.stderr)
        return 2
    if not 0.0 <= args.weight_b <= 1.0:
        print("error: --weight-b must be between 0 and 1", file=sys.stderr)
        return 2
    if args.routing and not Path(args.routing).is_file():
        print("error: --routing must name an existing routing file", file=sys.stderr)
        return 2
    import uvicorn

    from core.config import get_settings
    from core.serving.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    app = create_app(model_dir, settings, log_url=args.log_url, challenger_dir=Path(second) if second else None,
                     weight_b=args.weight_b if args.challenger else 0.0, shadow=bool(args.shadow),
                     routing_file=Path(args.routing) if args.routing else None,
                     compile_trees=not args.no_compiled_trees)
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
