"""`compress`: one call from a source model, a labelled dataset and a budget to a validated, faster student."""

from ..data import TaskData, load_task_data
from .config import CompressionConfig
from .pipeline import CompressionResult, compress

__all__ = ["CompressionConfig", "CompressionResult", "TaskData", "compress", "load_task_data"]
