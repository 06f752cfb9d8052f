"""Export of vidpan's per-frame step to ONNX and ``torch.export``, and an onnxruntime engine.

- :mod:`vidpan.export.graphs`: the exported computations as plain tensor-in / tensor-out modules
  (the segmenter on uint8 frames; one tracker step with its state as explicit tensors);
- :mod:`vidpan.export.lowering`: lowering of the gather-path deformable attention for ONNX and
  the op-type checks (no ``grid_sample`` in any graph);
- :mod:`vidpan.export.exporter`: ``export_part`` (ONNX / ``.pt2`` file + manifest JSON);
- :mod:`vidpan.export.manifest`: the manifest written beside every exported file;
- :mod:`vidpan.export.engine`: onnxruntime-backed drop-in replacements for the eager segmenter
  and tracker, used by ``vidpan segment --engine onnxruntime``.

Importing this package is light; torch / onnx / onnxruntime are imported by the submodules.
"""
