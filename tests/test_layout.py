"""The package reads like the data flow: one folder per stage, imports point upstream only.

DESIGN section 7. Every import in ``benchmark/`` (module level or inside a function:
a function-level import is still a dependency) is resolved to its stage; a stage may
import only the stages listed for it below, and the module graph has no cycle. A
failure names the offending file and import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

from benchmark.config import paths

# stage -> the stages it may import (besides itself). Models never import experiment or
# evaluation (a model does not hold an evaluator); the report never imports models or
# experiment (it reads run records and specs only).
ALLOWED = {
    "config": set(),
    "data": {"config"},
    "scenarios": {"config", "data"},
    "features": {"config", "scenarios"},
    "models": {"config", "scenarios", "features"},
    "evaluation": {"config", "scenarios"},
    "experiment": {"config", "scenarios", "features", "models", "evaluation"},
    "submission": {"config", "scenarios", "evaluation"},
    "report": {"config", "scenarios", "evaluation"},
}
TOP = {"cli", "__init__"}  # the package root and the CLI may import any stage


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every benchmark import in a file."""
    mod = _module_name(path, root)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "benchmark"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "benchmark":
                continue
            for a in node.names:  # `from benchmark.config import paths` imports a module
                sub = f"{target}.{a.name}"
                known = (root / Path(*sub.split("."))).with_suffix(".py").exists() or (root / Path(*sub.split("."))).is_dir()
                out.append((node.lineno, sub if known else target))
    return out


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph(root: Path = paths.ROOT) -> tuple[nx.DiGraph, list[str]]:
    g, problems = nx.DiGraph(), []
    for path in sorted((root / "benchmark").rglob("*.py")):
        src = _module_name(path, root)
        g.add_node(src)
        for line, dst in _imports(path, root):
            g.add_edge(src, dst)
            s, d = _stage(src), _stage(dst)
            if s in TOP or s == d:
                continue
            if s not in ALLOWED:
                problems.append(f"{path.relative_to(root)}: module outside the stage folders of DESIGN section 7")
            elif d not in ALLOWED[s]:
                problems.append(f"{path.relative_to(root)}:{line}: {s} imports {dst} ({d} is not upstream of {s})")
    return g, problems


def test_every_import_points_upstream():
    _, problems = _graph()
    assert not problems, "\n".join(problems)


def test_no_import_cycle():
    g, _ = _graph()
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles[:5])


def test_only_stage_folders_at_the_top():
    pkg = paths.ROOT / "benchmark"
    loose = sorted(p.name for p in pkg.glob("*.py") if p.stem not in TOP)
    dirs = sorted(p.name for p in pkg.iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert not loose, f"modules loose at the top of benchmark/: {loose}"
    assert set(dirs) == set(ALLOWED), f"stage folders {dirs} != DESIGN section 7 {sorted(ALLOWED)}"


def _plant(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return root


def test_the_checks_can_fail(tmp_path):
    """A planted upward import, a relative one and a cycle are each reported."""
    root = _plant(tmp_path, {
        "benchmark/__init__.py": "",
        "benchmark/models/__init__.py": "",
        "benchmark/models/a.py": "def f():\n    from benchmark.evaluation.metrics import x\n",
        "benchmark/evaluation/__init__.py": "",
        "benchmark/evaluation/metrics.py": "x = 1\n",
        "benchmark/report/__init__.py": "",
        "benchmark/report/r.py": "from ..experiment import runner\n",
        "benchmark/experiment/__init__.py": "",
        "benchmark/experiment/runner.py": "from benchmark.experiment import tuning\n",
        "benchmark/experiment/tuning.py": "from benchmark.experiment.runner import y\n",
    })
    g, problems = _graph(root)
    assert any("benchmark/models/a.py:2: models imports benchmark.evaluation.metrics" in p for p in problems), problems
    assert any("benchmark/report/r.py:1: report imports benchmark.experiment.runner" in p for p in problems), problems
    assert len(problems) == 2, problems
    assert list(nx.simple_cycles(g)), "the planted runner <-> tuning cycle was not found"
