"""Startup hook that lets plain `lm_eval` find this plugin (lm-eval 0.4.13 has no plugin discovery).

`lm_eval_mlc.pth` in site-packages calls :func:`install` at interpreter start. It costs one
environment lookup and one entry on `sys.meta_path`; nothing of lm-eval or of this package is
imported until lm-eval itself is. When lm-eval's modules load, the hook:

* `lm_eval.models`      → registers `hf-mlc` as a lazy placeholder (imported on first use);
* `lm_eval.tasks.manager` → makes every `TaskManager` also index this package's task YAMLs
  (before any `--include_path`, so a user's own task of the same name still wins);
* `lm_eval.config.evaluate_config` → the CLI validates our tasks' data files right after
  resolving task names, i.e. before the model is loaded (lm-eval loads data after the model);
* `lm_eval.api.model`   → `--use_cache` keeps each model's responses apart (`cache_key`);
* `lm_eval.api.metrics` → where lm-eval would bootstrap our aggregations' stderr (0.5: hours),
  it reports N/A for them, as 0.4 does.

Switch it off with `LM_EVAL_MLC_AUTOLOAD=0`; then use `lm-eval-mlc run` or
`--include_path $(lm-eval-mlc tasks-dir)` as with any external task folder.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

ENV_SWITCH = "LM_EVAL_MLC_AUTOLOAD"


def _patch_models(module: ModuleType) -> None:
    from lm_eval_mlc.harness.plugin import register_model

    register_model()


def _patch_task_manager(module: ModuleType) -> None:
    from lm_eval_mlc.harness.plugin import add_task_paths

    add_task_paths(module.TaskManager)


def _patch_evaluator_config(module: ModuleType) -> None:
    from lm_eval_mlc.harness.plugin import add_data_check

    add_data_check(module.EvaluatorConfig)


def _patch_caching_lm(module: ModuleType) -> None:
    from lm_eval_mlc.harness.cache_key import key_cache_by_model

    key_cache_by_model(module.CachingLM)


def _patch_metrics(module: ModuleType) -> None:
    from lm_eval_mlc.harness.plugin import skip_our_bootstrap

    skip_our_bootstrap(module)


_POST_IMPORT: dict[str, Callable[[ModuleType], None]] = {
    "lm_eval.models": _patch_models,
    "lm_eval.tasks.manager": _patch_task_manager,
    "lm_eval.config.evaluate_config": _patch_evaluator_config,
    "lm_eval.api.model": _patch_caching_lm,
    "lm_eval.api.metrics": _patch_metrics,
}


class _PostImportLoader(importlib.abc.Loader):
    """Runs the real loader, then our patch for that module."""

    def __init__(self, loader: importlib.abc.Loader, patch: Callable[[ModuleType], None]):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the few lm-eval modules we patch; passes on everything else."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = _POST_IMPORT.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PostImportLoader(spec.loader, patch)
                return spec
        return None


def enabled() -> bool:
    """False when the user switched the hook off with `LM_EVAL_MLC_AUTOLOAD=0/false/no/off`."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in {"0", "false", "no", "off"}


def install() -> None:
    """Put the finder on `sys.meta_path` once; patch modules that are already imported."""
    if not enabled() or any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _PostImportFinder())
    for name, patch in _POST_IMPORT.items():
        if name in sys.modules:
            patch(sys.modules[name])
