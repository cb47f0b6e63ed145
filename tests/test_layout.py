"""The package's layout stays readable: no module in ``nmbrl_brian/`` over 600 lines (issue 16)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def test_no_package_module_is_over_600_lines():
    modules = sorted((ROOT / "nmbrl_brian").rglob("*.py"))
    assert len(modules) > 10, f"found only {len(modules)} modules: the search is wrong"
    lengths = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines()) for path in modules}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them where their parts are): {too_long}"
