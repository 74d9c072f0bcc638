"""Commands beside the entry point that need the whole package (``python -m landmarks.data``)."""
