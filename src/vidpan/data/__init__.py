"""Data: on-disk formats (VIPSeg, VSPW, COCO panoptic), datasets, clip transforms, the synthetic benchmark."""
