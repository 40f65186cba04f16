"""The cortex package is four single-purpose modules whose imports flow one way, without Airflow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORTEX = Path(__file__).resolve().parents[2] / "airflow_provider_sophia" / "cortex"
MODULES = ("models", "utils", "handlers", "core")
#: which sibling modules each module may import.
ALLOWED = {
    "models": set(),
    "utils": {"models"},
    "handlers": {"models"},
    "core": {"models", "utils", "handlers"},
}


def _imports(module: str) -> set[str]:
    tree = ast.parse((CORTEX / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone_in_a_fresh_interpreter_without_airflow(module: str) -> None:
    code = (
        "import sys\n"
        f"import airflow_provider_sophia.cortex.{module}\n"
        "leaked = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "assert not leaked, leaked\n"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", MODULES)
def test_import_graph_flows_one_way(module: str) -> None:
    imported = _imports(module)
    siblings = {
        name.split(".")[2]
        for name in imported
        if name.startswith("airflow_provider_sophia.cortex.") and name.split(".")[2] in MODULES
    }
    assert siblings <= ALLOWED[module], f"{module} imports {sorted(siblings - ALLOWED[module])}"
    assert not any(name == "airflow" or name.startswith("airflow.") for name in imported)


def test_nothing_imports_core_back() -> None:
    for module in MODULES:
        if module != "core":
            imported = _imports(module)
            assert not any(name.startswith("airflow_provider_sophia.cortex.core") for name in imported)


def test_package_init_imports_nothing() -> None:
    tree = ast.parse((CORTEX / "__init__.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
