"""Whole pictures and beyond: face finders, the Landmarker API, prediction output, export."""

from .landmarker import Face, Landmarker

__all__ = ["Face", "Landmarker"]
