"""Tasks (datasets, metrics, reference hyperparameters); importing this package registers them."""

from ppruning.tasks.registry import TaskInfo, all_tasks, get_task, register_task

__all__ = ["TaskInfo", "all_tasks", "get_task", "register_task"]
