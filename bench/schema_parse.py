"""The cost of checking that converted text columns are readable (``core.serving.schema.TextParse``).

The request schema of a model whose recipe converts ``date`` from text, against the same schema
without that check, on the Chicago ridership sample's rows: ``check_records`` per request, in one
process, side by side. Run: ``.venv/bin/python -m bench.schema_parse``.
"""
from __future__ import annotations

import json
import timeit

import pandas as pd

from core.config import SAMPLES_DIR
from core.serving.schema import TextParse, infer_schema


def main() -> None:
    reference = pd.read_csv(SAMPLES_DIR / "chicago.csv").drop(columns=["ridership"]).head(1_000)
    plain = infer_schema(list(reference.columns), reference)
    checked = infer_schema(list(reference.columns), reference, parses={"date": TextParse("datetime")})
    print("| rows per request | without the check (µs) | with it (µs) | ratio |")
    print("|---:|---:|---:|---:|")
    for n in (1, 100, 10_000):
        rows = json.loads(reference.sample(n, replace=True, random_state=0).to_json(orient="records"))
        number = max(3, 3_000 // n)
        times = [min(timeit.repeat(lambda s=s: s.check_records(rows), number=number, repeat=5)) / number
                 for s in (plain, checked)]
        print(f"| {n:,} | {times[0] * 1e6:,.0f} | {times[1] * 1e6:,.0f} | {times[1] / times[0]:.2f} |")


if __name__ == "__main__":
    main()
