"""Backbones: the DINOv2 vision transformer and the ViT-Adapter (no injectors) that turns it into a pyramid."""
