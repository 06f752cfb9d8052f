"""Training datasets and clip samplers."""
