"""Batch segmentation: many videos, one output folder each, a manifest to resume from.

``vidpan segment --video-list FILE|DIR|GLOB --out DIR`` runs here: :mod:`.inputs` turns the
list into videos, :mod:`.manifest` records what is done (``DIR/manifest.jsonl``), :mod:`.job`
segments one video into ``DIR/<video>/`` (atomically, with
:func:`vidpan.inference.segment_job.segment_to_dir`), :mod:`.runner` plans and drives a batch on
one process or a torchrun rank, :mod:`.ray_engine` on Ray actors. See docs/batch.md.

Importing this package is light; torch, av and ray load inside the functions that need them.
"""
