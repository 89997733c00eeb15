"""Files that mypy checks (``packages`` in pyproject) and pytest never runs: the public types."""
