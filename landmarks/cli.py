"""What every command does with errors: one clear line, an exit status, no traceback."""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import LandmarksError


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: ...)`` to a flag's help unless the help already says its default
    in words or there is none to show (``None``, a bare switch)."""

    def _get_help_string(self, action):
        if "default" in (action.help or "") or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def setup_logging(level: int = logging.INFO) -> None:
    # Other libraries (the ONNX exporter's optimizer, for one) log at INFO; only warnings of theirs show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    # Set on the package logger itself: basicConfig does nothing when a host (pytest) set up logging.
    logging.getLogger("landmarks").setLevel(level)


def run_cli(job, debug: bool = False) -> int:
    """Run ``job()``; turn known errors into ``error: ...`` on stderr and their exit status."""
    setup_logging()
    try:
        return int(job() or 0)
    except LandmarksError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        if debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
