"""Evaluation: VPQ, STQ (VIPSeg) and mIoU, fwIoU, VC (VSPW), exactly as the official scripts."""
