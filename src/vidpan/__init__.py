"""vidpan: video panoptic and video semantic segmentation.

Implements the PVUW 2024 VPS winning system (a frozen DINOv2 ViT behind a ViT-Adapter without
injectors, inside the decoupled DVIS framework: per-frame Mask2Former segmenter, online referring
tracker, offline temporal refiner) in pure PyTorch, with exact VIPSeg/VSPW evaluation.
"""

__version__ = "0.1.0"
