"""The README's result tables are those of the committed demo results."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_tables_are_the_committed_demo_tables():
    mod = _script()
    _, block, _ = mod.split((ROOT / "README.md").read_text())
    assert block == "\n" + mod.render(ROOT, "demo"), (
        "README.md's tables differ from reports/demo/tables/: run `make demo readme-tables` and commit both")


def test_the_check_sees_a_changed_number(tmp_path):
    import shutil

    mod = _script()
    shutil.copytree(ROOT / "reports" / "demo" / "tables", tmp_path / "reports" / "demo" / "tables")
    table = tmp_path / "reports" / "demo" / "tables" / "table3.md"
    text = table.read_text()
    number = re.search(r"\| (\d+\.\d) ±", text)  # the first mean of the first row
    table.write_text(text[:number.start(1)] + f"{float(number.group(1)) + 0.1:.1f}" + text[number.end(1):])
    assert mod.render(tmp_path, "demo") != mod.render(ROOT, "demo")
