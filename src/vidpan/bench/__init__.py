"""Benchmarks behind `vidpan bench`: evaluation speed, segmenter and video inference time and memory."""
