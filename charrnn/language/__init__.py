"""The language task: all of its own code in one folder (see charrnn/tasks.py)."""
