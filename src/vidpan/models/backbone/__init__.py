"""Backbones: the DINOv2 vision transformer and the injector-free ViT-Adapter that makes it a pyramid."""
