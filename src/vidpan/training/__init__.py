"""Training: the explicit loop, stages as data, distributed helpers."""
