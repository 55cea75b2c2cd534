"""Where the plugin's files live once installed."""

from importlib.resources import files
from pathlib import Path

#: Directory holding the task YAMLs (`lm_eval_mlc/tasks`, in a checkout and installed alike).
TASKS_DIR: str = str(Path(str(files("lm_eval_mlc.tasks"))))
