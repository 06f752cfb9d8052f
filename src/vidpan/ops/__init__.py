"""Pure-PyTorch operators (multi-scale deformable attention, point sampling) with optional fast paths."""
