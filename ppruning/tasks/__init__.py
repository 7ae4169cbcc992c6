"""Tasks (datasets, metrics, reference hyperparameters); importing this package registers them."""

from ppruning.tasks import custom, glue, language_modeling, squad  # noqa: F401 - registers the tasks
from ppruning.tasks.columns import check_data_columns
from ppruning.tasks.refs import validate_task_ref
from ppruning.tasks.registry import TaskInfo, all_tasks, get_task, register_task

__all__ = ["TaskInfo", "all_tasks", "check_data_columns", "get_task", "register_task", "validate_task_ref"]
