"""Task glue between data, models and the training loop: one module per task."""
