"""Models: DINOv2 ViT + ViT-Adapter backbone, Mask2Former segmenter, referring tracker, temporal refiner."""
