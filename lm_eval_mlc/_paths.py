"""Where the plugin's files live once installed."""

from importlib.resources import files
from pathlib import Path

#: Directory holding the task YAMLs (`tasks/` in the source tree, `lm_eval_mlc/tasks` installed).
TASKS_DIR: str = str(Path(str(files("lm_eval_mlc.tasks"))))
