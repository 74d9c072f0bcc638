"""Errors the command line turns into one clear line and an exit status."""

import importlib


class LandmarksError(Exception):
    """Base class; `exit_code` is what the command line exits with."""

    exit_code = 1


class DataError(LandmarksError):
    """Bad data: a label line, an image, a list or a checkpoint (exit 1)."""

    exit_code = 1


class UsageError(LandmarksError):
    """Wrong usage: a bad option, an unknown name, an impossible request (exit 2)."""

    exit_code = 2


class TrainingDiverged(LandmarksError):
    """The loss became NaN or infinite."""

    exit_code = 1


def require_extra(module: str, needed_for: str):
    """Import an optional dependency of the ``export`` extra, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{needed_for} needs the {module} package: pip install 'landmarks[export]'") from None
