"""Readers and writers of the official on-disk formats (VIPSeg, VSPW, COCO panoptic)."""
