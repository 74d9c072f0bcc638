"""The package's layers (pyproject's import-linter contract) hold, and the check catches an
import that runs upward, inside a function too. Also: one version string."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import landmarks

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the package under ``root`` with ``root``'s pyproject.toml."""
    pytest.importorskip("importlinter")
    code = "import sys, importlinter.cli as c; sys.exit(c.lint_imports(config_filename='pyproject.toml', no_cache=True))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_layers_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path):
    shutil.copytree(REPO / "landmarks", tmp_path / "landmarks", ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    images = tmp_path / "landmarks" / "data" / "images.py"
    images.write_text(images.read_text() + "\n\ndef finder():\n    from ..inference.faces import make_finder\n"
                      "    return make_finder\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "landmarks.data.images -> landmarks.inference.faces" in result.stdout


def test_the_version_is_written_once():
    assert importlib.metadata.version("landmarks") == landmarks.__version__
    assert "version =" not in (REPO / "pyproject.toml").read_text().split("[project]")[1].split("[")[0]
