"""Training: the one loop, the tasks it learns, optimizer and schedule, runtime and run records."""

from .loop import FitResult, fit, train_one_epoch
from .runtime import Distributed, init_distributed, keep_freed_memory, resolve_device
from .tasks import LandmarkTask, StepOutput, accuracies, class_counts, threshold_sweep

__all__ = ["Distributed", "FitResult", "LandmarkTask", "StepOutput", "accuracies", "class_counts", "fit",
           "init_distributed", "keep_freed_memory", "resolve_device", "threshold_sweep", "train_one_epoch"]
