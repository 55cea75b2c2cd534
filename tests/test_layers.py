"""The package's layers: pure core below the model code, lm-eval adapters above, reports and
CLI on top; imports go only downward, and the pure layers load without torch or lm-eval."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import lm_eval_mlc

PACKAGE = Path(lm_eval_mlc.__file__).parent
#: Rank of each layer; a module may import its own layer and lower ones only.
LAYERS = {
    "_io": 0, "_paths": 0, "metrics": 0,
    "core": 1,
    "scoring": 2,
    "data": 3,
    "harness": 4, "_startup": 4,
    "reports": 5,
    "cli": 6,
}  # fmt: skip


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if "tasks" in rel.parts:  # task folders' utils.py: harness-side glue, read by lm-eval
            continue
        out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


def test_the_top_level_holds_only_layers_and_a_few_modules():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 5, top
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} >= {
        "core", "metrics", "scoring", "data", "harness", "reports", "tasks"
    }  # fmt: skip


def test_imports_only_go_downward():
    bad = []
    for module, path in _modules():
        layer = _layer(module)
        if layer not in LAYERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if not name.startswith("lm_eval_mlc.") or _layer(name) not in LAYERS:
                    continue
                if LAYERS[_layer(name)] > LAYERS[layer]:
                    bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_core_and_metrics_load_without_torch_or_lm_eval():
    modules = [m for m, _ in _modules() if _layer(m) in ("core", "metrics")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in ('torch', 'lm_eval', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "LM_EVAL_MLC_AUTOLOAD": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    assert len(modules) >= 8  # the layers are really there
