"""Train and run facial landmark regressors (the course's 21 points by default, any scheme)."""

__version__ = "0.2.0"


def __getattr__(name):
    # The API pulls in torch; importing it lazily keeps ``import landmarks`` cheap for tools.
    if name in ("Landmarker", "Face"):
        from .inference import landmarker
        return getattr(landmarker, name)
    raise AttributeError(f"module 'landmarks' has no attribute {name!r}")
