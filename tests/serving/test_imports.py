"""The model image must not need the app's heavy dependencies."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("streamlit", "optuna", "evidently", "plotly")


def test_serving_imports_no_app_only_libraries(models) -> None:
    code = (
        "import json, sys\n"
        "import core.serving, core.serving.app, core.serving.__main__\n"
        "from core.serving.model import load_model\n"
        f"load_model({str(models['binary'].dir)!r}, extra_columns='reject', unseen_categories='reject', fast_max_rows=512)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    # and no source file under core/serving names them either (a lazy import would slip past)
    for path in (ROOT / "core" / "serving").rglob("*.py"):
        text = path.read_text()
        for name in FORBIDDEN:
            assert f"import {name}" not in text and f"from {name}" not in text, (path.name, name)
