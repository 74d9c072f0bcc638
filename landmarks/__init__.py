"""Train and run 21-point facial landmark regressors."""

__version__ = "0.1.0"

NUM_POINTS = 21
