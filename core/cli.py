"""The headless interface: `python -m core profile|clean|import ...`.

Exit codes: 0 on success, 2 on bad input with a one-line reason on stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.config import Settings, get_settings
from core.errors import BadInput

EXIT_BAD_INPUT = 2


def _jsonable(value):
    """Frozen results (dataclasses, pydantic models, enums) as plain JSON values."""
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _load(path: str, settings: Settings):
    from core.data.ingest import read_path

    return read_path(Path(path), settings=settings)


def cmd_profile(args: argparse.Namespace, settings: Settings) -> int:
    from core.data.issues import detect_issues
    from core.data.profile import profile_table

    frame = _load(args.data, settings).frame
    if args.target is not None and args.target not in frame.columns:
        raise BadInput(f"target column {args.target!r} is not in the table")
    profile = profile_table(frame, target=args.target)
    issues = detect_issues(frame, profile, target=args.target, seed=settings.random_seed)
    if args.json:
        print(json.dumps({"profile": _jsonable(profile), "issues": _jsonable(issues)}, indent=2))
        return 0
    task = f", task {profile.task.value}" if profile.task else ""
    print(f"{profile.rows} rows x {profile.columns} columns, {profile.duplicate_rows} duplicate rows{task}")
    for col in profile.column_profiles:
        print(f"  {col.name:<30} {col.kind.value:<12} missing {col.missing_share:6.1%}  unique {col.unique}")
    print(f"{len(issues)} issue(s)")
    for issue in issues:
        fix = f" [fix: {issue.fix.kind}]" if issue.fix is not None else ""
        print(f"  {issue.severity.value.upper():<6} {issue.title}{fix}")
    return 0


def cmd_clean(args: argparse.Namespace, settings: Settings) -> int:
    from core.prep.recipe import apply_recipe, recipe_from_json

    frame = _load(args.data, settings).frame
    try:
        recipe_text = Path(args.recipe).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read the recipe file: {exc.strerror}") from None
    cleaned = apply_recipe(frame, recipe_from_json(recipe_text), target=args.target)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    cleaned.to_csv(tmp, index=False)
    tmp.replace(out)  # atomic: a reader never sees half a file
    print(f"wrote {len(cleaned)} rows x {cleaned.shape[1]} columns to {out}")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from core.data.ingest import read_http, read_sql
    from core.datasets import import_table
    from core.store.db import make_engine

    if args.data:
        loaded, name = _load(args.data, settings), Path(args.data).name
    elif args.url:
        loaded, name = read_http(args.url, settings=settings), args.url.rsplit("/", 1)[-1] or "download"
    else:
        loaded, name = read_sql(args.sql_url, args.query, settings=settings), "query"
    engine = make_engine(settings.db_url)
    dataset, created = import_table(engine, loaded, project=args.project, name=args.name or name, settings=settings)
    state = "stored" if created else "already stored"
    print(f"dataset {dataset.id} ({dataset.rows} rows x {dataset.columns} columns) {state} in project {args.project!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="ShipML, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="profile a table and list its issues")
    p.add_argument("--data", required=True, help="CSV, TSV, Excel, Parquet or JSON lines file")
    p.add_argument("--target", help="the column to predict")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("clean", help="apply a cleaning recipe to a table")
    p.add_argument("--data", required=True)
    p.add_argument("--recipe", required=True, help="recipe JSON, as exported by the Clean page")
    p.add_argument("--target", help="the target column, if the recipe has target steps")
    p.add_argument("--out", required=True, help="where to write the cleaned CSV")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("import", help="store a table as a dataset of a project")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a local file")
    src.add_argument("--url", help="an http(s) URL returning CSV, JSON or Parquet")
    src.add_argument("--sql-url", help="a SQLAlchemy database URL (use with --query)")
    p.add_argument("--query", help="a SELECT statement, with --sql-url")
    p.add_argument("--project", default="default")
    p.add_argument("--name", help="the dataset's display name")
    p.set_defaults(func=cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input ends with exit code 2 and one line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "sql_url", None) and not args.query:
        parser.error("--sql-url needs --query")
    try:
        return args.func(args, get_settings())
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
