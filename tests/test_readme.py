"""The README is a landing page whose links resolve; the result tables (docs/results.md) are the committed demo's."""

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
    _, block, _ = mod.split((ROOT / "docs" / "results.md").read_text())
    assert block == "\n" + mod.render(ROOT, "demo"), (
        "docs/results.md's tables differ from reports/demo/tables/: run `make demo readme-tables` and commit both")


def test_the_check_sees_a_changed_number(tmp_path):
    import shutil

    mod = _script()
    shutil.copytree(ROOT / "reports" / "demo" / "tables", tmp_path / "reports" / "demo" / "tables")
    table = tmp_path / "reports" / "demo" / "tables" / "table3.md"
    text = table.read_text()
    number = re.search(r"\| (\d+\.\d) ±", text)  # the first mean of the first row
    table.write_text(text[:number.start(1)] + f"{float(number.group(1)) + 0.1:.1f}" + text[number.end(1):])
    assert mod.render(tmp_path, "demo") != mod.render(ROOT, "demo")


def test_the_readme_is_a_landing_page_of_at_most_300_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move detail into docs/"
    first_screen = "\n".join(lines[:40])
    assert "make demo" in first_screen and "make test" in first_screen
    assert not re.search(r"\b[0-9a-f]{7,40}\b", first_screen), "no commit hashes on the README's first screen"


def _links(path: Path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if not re.match(r"[a-z]+://", target):
            yield target


def test_every_relative_link_of_the_readme_and_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = [f"{p.relative_to(ROOT)} -> {t}" for p in pages for t in _links(p)
               if not (p.parent / t).exists()]
    assert not missing, missing


def test_the_link_check_sees_a_missing_page(tmp_path):
    page = tmp_path / "x.md"
    page.write_text("see [the protocol](docs/protocol.md) and [a site](https://example.org/a)")
    assert list(_links(page)) == ["docs/protocol.md"]


def _pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_hetmtl_command_the_docs_name_exists():
    from hetmtl.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    known = set(sub.choices)
    named = {(p.name, c) for p in _pages() for c in re.findall(r"`hetmtl ([a-z][a-z-]+)", p.read_text())}
    assert named and not {(p, c) for p, c in named if c not in known}, sorted(named)


def test_every_params_file_and_make_target_the_docs_name_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    for page in _pages():
        text = page.read_text()
        for path in re.findall(r"`(params/[\w/.-]+\.yaml)`", text):
            assert (ROOT / path).exists(), f"{page.name}: {path}"
        for target in re.findall(r"`make ([a-z][a-z-]*)", text):
            assert target in targets, f"{page.name}: make {target}"
