"""``pip wheel .`` holds what ``graphprune <command>`` needs: the commands, the zoo and the shipped recipes.

The wheel is built from a copy of the checkout (an in-tree build would write ``build/`` into it) without
its dependencies or build isolation (no network); its entry point and files are read from the archive.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("graphprune", "sr_models", "recipes"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src),
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    return zipfile.ZipFile(next(out.glob("graphprune-*.whl")))


def test_wheel_has_the_commands_and_the_recipes(wheel):
    names = set(wheel.namelist())
    commands = {p.name for p in (ROOT / "graphprune" / "cli").glob("*.py")}
    assert {f"graphprune/cli/{c}" for c in commands} <= names
    assert {f"graphprune/recipes/{p.name}" for p in (ROOT / "recipes").glob("*.yaml")} <= names
    assert "sr_models/__init__.py" in names and not any(n.startswith(("tests/", "tools/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "graphprune = graphprune.cli:main" in wheel.read(entry).decode()


def test_the_shipped_recipe_a_wheel_finds_is_the_checkouts(wheel):
    text = wheel.read("graphprune/recipes/ledsr_x4_srp.yaml")
    assert text == (ROOT / "recipes" / "ledsr_x4_srp.yaml").read_bytes()
