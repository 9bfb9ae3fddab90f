"""The routines see only the backend interface: importing them (or the backend interface) loads neither
the emulator nor its C core, and no routine module imports the emulator."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["labctl.routines", "labctl.backends.base", "labctl.backends", "labctl.core"])
def test_import_loads_no_emulator(module: str) -> None:
    code = (f"import sys, {module}; "
            "loaded = sorted(m for m in sys.modules if m == 'emulator' or m.startswith('emulator.')); "
            "assert 'emulator._core' not in sys.modules and not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_routine_module_imports_the_emulator() -> None:
    for path in sorted((ROOT / "labctl" / "routines").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name != "emulator" and not name.startswith("emulator."), f"{path.name} imports {name}"
