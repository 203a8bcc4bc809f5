"""Task families: prompt sources, references and default rewards."""

from textgym.tasks.base import SPLITS, TASKS, Example, Task, make_task

__all__ = ["SPLITS", "TASKS", "Example", "Task", "make_task"]
