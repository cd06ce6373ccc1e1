"""The classify task: all of its own code in one folder (see charrnn/tasks.py)."""
