"""The synthetic VPS/VSS benchmark: deterministic videos in the real VIPSeg / VSPW on-disk formats.

No real dataset or pretrained weight can be downloaded where vidpan is developed, so the
loaders, trainers, evaluators and the demo run on these videos: textured stuff regions under a
panning camera, thing instances with a class shape and outline and a per-instance look, moving,
scaling, occluding one another, entering and leaving the frame, same-class pairs crossing paths.
``docs/synthetic.md`` describes the scene model, the difficulty levels and the layout.

- :mod:`.scene`: categories, difficulty knobs, the random scene model;
- :mod:`.render`: vectorised NumPy rendering of frames and labels;
- :mod:`.noisy`: noisy predictions with planted, documented errors;
- :mod:`.writer`: :func:`generate`, writing everything atomically in the real layouts.
"""

from vidpan.data.synthetic.categories import CATEGORIES
from vidpan.data.synthetic.noisy import KINDS as PERTURBATION_KINDS
from vidpan.data.synthetic.noisy import PredictedVideo, perturb_video
from vidpan.data.synthetic.render import Frame, render_video
from vidpan.data.synthetic.scene import DIFFICULTIES, Difficulty, Scene, sample_scene
from vidpan.data.synthetic.writer import SyntheticDataset, generate, parse_size

__all__ = [
    "CATEGORIES",
    "DIFFICULTIES",
    "PERTURBATION_KINDS",
    "Difficulty",
    "Frame",
    "PredictedVideo",
    "Scene",
    "SyntheticDataset",
    "generate",
    "parse_size",
    "perturb_video",
    "render_video",
    "sample_scene",
]
