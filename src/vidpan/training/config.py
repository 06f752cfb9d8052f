"""Training configuration: frozen dataclasses for one training stage, and multi-stage recipes.

One config system (STYLE.md #2): :class:`TrainConfig` extends the model/inference
:class:`vidpan.config.Config` with the data, stage, solver, loss, output and evaluation sections.
YAML and ``--set a.b=value`` map 1:1 onto the fields through :mod:`vidpan.config`'s machinery, so
unknown keys and wrong types are errors naming the full dotted path.

A **recipe** is a YAML file holding a TrainConfig's keys plus a ``stages:`` mapping, in training
order, from stage name to the keys that stage changes::

    base: vitg                 # a model preset (name, model, inference) or another YAML file
    data: {...}                # common to every stage
    solver: {...}
    output: {dir: runs/vipseg_vitg}
    stages:
      segmenter: {stage: {kind: segmenter, init: weights/vit.safetensors}, solver: {max_iter: 20000}}
      tracker:   {stage: {kind: tracker, init: "stage:segmenter"}, data: {sampling: {...}}}

The config of stage S is the common part deep-merged with ``stages[S]`` (then the ``--set``
overrides); its outputs go to ``<output.dir>/<S>/`` and ``init: "stage:S"`` names the model that
stage S exported (``<output.dir>/<S>/model_final.safetensors``), so the chain of checkpoints is
written in the recipe itself. A YAML file without ``stages:`` is a single stage trained in
``output.dir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vidpan.config import (
    Config,
    InferenceConfig,
    ModelConfig,
    apply_overrides,
    configs_dir,
    from_dict,
    merge_dicts,
    read_yaml,
)
from vidpan.errors import InputError

StageKind = Literal["segmenter", "tracker", "refiner"]
DatasetKind = Literal["vipseg", "vspw", "coco"]
Precision = Literal["fp32", "bf16", "fp16"]

FINAL_MODEL_NAME = "model_final.safetensors"
STAGE_REF_PREFIX = "stage:"


@dataclass(frozen=True)
class SamplingConfig:
    """Frames of a training clip (``vidpan.data.samplers.FrameSampling``; DVIS++ ``SAMPLING_FRAME_*``)."""

    num_frames: int = 1
    # Max distance from the reference frame; 2 * frame_range + 1 == num_frames = contiguous clip.
    frame_range: int = 0
    reverse: bool = False  # DVIS++ REVERSE_AGU
    replace: bool = True
    # A video shorter than the clip is an error (checked for every video before training).
    strict: bool = False


@dataclass(frozen=True)
class AugmentationConfig:
    """Clip-consistent augmentation (``vidpan.data.transforms.ClipAugmentation``)."""

    # Candidate short sides ("choice") or [min, max] ("range"); [0] = no resize.
    short_sides: tuple[int, ...] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)
    short_side_sampling: Literal["choice", "range"] = "choice"
    max_long_side: int = 1333
    # [height, width] of the absolute random crop, or null for no crop.
    crop_size: tuple[int, int] | None = None
    single_category_max_area: float = 1.0
    flip_prob: float = 0.5
    pseudo_rotation_degrees: float = 0.0


@dataclass(frozen=True)
class DataConfig:
    """The training dataset and how clips are drawn from it.

    The roots of all datasets live side by side so one ``--set data.vipseg_root=...`` serves
    every stage of a recipe; ``dataset`` picks the one a stage reads.
    """

    dataset: DatasetKind = "vipseg"
    # VIPSeg root (VIPSeg_720P: images/, panomasksRGB/, panoptic_gt_VIPSeg_<split>.json).
    vipseg_root: str = ""
    # VSPW root (VSPW_480p: data/<video>/{origin,mask}, <split>.txt).
    vspw_root: str = ""
    # COCO root (annotations/panoptic_<split>.json, panoptic_<split>/, <split>/).
    coco_root: str = ""
    split: str = "train"
    # Category JSON (panoVIPSeg_categories.json). VSPW needs it (default:
    # <vipseg_root>/panoVIPSeg_categories.json); VIPSeg and COCO read their own JSON when empty.
    categories: str = ""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    # DataLoader worker processes per rank (0 = load in the training process).
    num_workers: int = 2
    # Clips with more instances than queries keep the first Q (in first-appearance order).
    truncate_instances: bool = True


@dataclass(frozen=True)
class StageConfig:
    """Which stage this is and where its weights come from (``vidpan.training.stages``)."""

    # segmenter: image-level losses, segmenter trained (its ViT stays frozen);
    # tracker: segmenter frozen, tracker trained; refiner: segmenter + tracker frozen, refiner trained.
    kind: StageKind = "segmenter"
    # Name of the stage in its recipe (outputs go to <output.dir>/<name>); "" = single stage.
    name: str = ""
    # Native vidpan .safetensors to start from, "stage:<name>" for an earlier stage's export,
    # or "" for random weights. Parts the stage builds but the file lacks start from scratch.
    init: str = ""
    # Key prefixes NOT taken from ``init`` (re-initialised), e.g. the class head when the class
    # space changes (COCO 133 -> VIPSeg 124): segmenter.decoder.class_embed.
    init_reset: tuple[str, ...] = ()


@dataclass(frozen=True)
class SolverConfig:
    """Optimizer and schedule (Mask2Former / DVIS++ ``SOLVER.*``, reference §4.2)."""

    optimizer: Literal["adamw"] = "adamw"
    base_lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    weight_decay_norm: float = 0.0
    weight_decay_embed: float = 0.0
    # Parameter-name fragments that get ``weight_decay_embed`` besides nn.Embedding weights.
    no_decay_names: tuple[str, ...] = (
        "query_embed",
        "query_feat",
        "level_embed",
        "pos_embed",
        "cls_token",
        "register_tokens",
        "mask_token",
        "relative_position_bias_table",
        "absolute_pos_embed",
    )
    # Learning-rate factor of every parameter under ``backbone_prefix`` (the ViT-Adapter).
    backbone_multiplier: float = 0.1
    backbone_prefix: str = "segmenter.backbone."
    # Full-model gradient L2 norm clip (0 = off).
    clip_grad_norm: float = 0.01
    warmup_iters: int = 10
    warmup_factor: float = 1.0
    warmup_method: Literal["linear", "constant"] = "linear"
    # Learning rate multiplied by ``gamma`` at each of these iterations.
    steps: tuple[int, ...] = (14000,)
    gamma: float = 0.1
    max_iter: int = 20000
    # Clips per optimizer step over all processes (divided evenly across ranks).
    clips_per_batch: int = 16
    # Mixed precision: fp32 (off), bf16 autocast, or fp16 autocast with a gradient scaler (GPU).
    # (Not "amp: off": YAML 1.1 reads a bare off as false.)
    precision: Precision = "fp32"


@dataclass(frozen=True)
class LossConfig:
    """Set-criterion weights and point sampling (Mask2Former / DVIS++ ``MODEL.MASK_FORMER.*``)."""

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    # Tracker: match each instance on the first frame it is visible (False = frame 0 for all, DVIS++).
    match_on_first_visible_frame: bool = True
    # First half of training: match on the frozen earlier stage (DVIS++ online/offline).
    frozen_stage_matching: bool = True


@dataclass(frozen=True)
class OutputConfig:
    """Where a run writes and how often."""

    dir: str = "runs/train"
    log_period: int = 20
    checkpoint_period: int = 2000
    keep_checkpoints: int = 3
    tensorboard: bool = True  # only if the tensorboard package is installed
    progress: bool = True  # tqdm bar on rank 0


@dataclass(frozen=True)
class EvalConfig:
    """Periodic evaluation during training (0 = off)."""

    period: int = 0
    # VIPSeg root to evaluate on ("" = data.vipseg_root) and its split.
    root: str = ""
    split: str = "val"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training stage needs. ``name``/``model``/``inference`` as :class:`Config`."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    # "auto" (CUDA when available), "cpu", "cuda" (one GPU per process: cuda:LOCAL_RANK).
    device: str = "auto"

    def model_config(self) -> Config:
        """The :class:`Config` stored with exported weights."""
        return Config(name=self.name, model=self.model, inference=self.inference)

    @property
    def run_dir(self) -> Path:
        """Where this stage writes: ``<output.dir>/<stage.name>`` (``output.dir`` for a single stage)."""
        root = Path(self.output.dir)
        return root / self.stage.name if self.stage.name else root


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def recipe_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a bundled recipe (``configs/recipes/<name>.yaml``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise InputError("config file not found", path=path)
        return path
    bundled = configs_dir() / "recipes" / f"{name_or_path}.yaml"
    if not bundled.is_file():
        raise InputError(
            f"unknown recipe {str(name_or_path)!r} (a YAML path, or one of: {', '.join(recipe_names())})"
        )
    return bundled


def recipe_names() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(p.stem for p in (configs_dir() / "recipes").glob("*.yaml"))


def recipe_stage_names(path: str | Path) -> list[str]:
    """Stage names of a recipe in training order ([] for a single-stage config)."""
    return list(_split_recipe(recipe_path(path))[1])


def load_train_configs(
    path: str | Path, *, stage: str | None = None, overrides: Sequence[str] = ()
) -> list[TrainConfig]:
    """The resolved config of every stage to run: ``stage`` alone, or all stages in order.

    Raises :class:`InputError` for unknown keys (with the stage and dotted path), an unknown
    stage, a ``stage:`` reference to a stage that is not earlier in the recipe, or bad overrides.
    """
    file = recipe_path(path)
    common, stages = _split_recipe(file)
    if not stages:
        if stage is not None:
            raise InputError(f"--stage {stage}: this config has no `stages:` section", path=file)
        return [_resolve(common, file, "", overrides, earlier=[])]
    if stage is not None and stage not in stages:
        raise InputError(f"unknown stage {stage!r} (this recipe has: {', '.join(stages)})", path=file)
    out = []
    names = list(stages)
    for i, name in enumerate(names):
        if stage is not None and name != stage:
            continue
        out.append(_resolve(merge_dicts(common, stages[name]), file, name, overrides, earlier=names[:i]))
    return out


def _split_recipe(file: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    data = read_yaml(file)
    stages = data.pop("stages", None)
    if stages is None:
        return data, {}
    if not isinstance(stages, dict) or not stages:
        raise InputError("`stages:` must be a non-empty mapping of stage name -> settings", path=file)
    for name, entry in stages.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(f"stages: {name!r} is not a valid stage name (letters, digits, _)", path=file)
        if entry is None:
            stages[name] = {}
        elif not isinstance(entry, dict):
            raise InputError(f"stages.{name}: expected a mapping of settings", path=file)
        elif "stages" in entry or "base" in entry:
            raise InputError(f"stages.{name}: `stages`/`base` are only allowed at the top level", path=file)
    return data, stages


def _resolve(
    data: dict[str, Any], file: Path, name: str, overrides: Sequence[str], *, earlier: list[str]
) -> TrainConfig:
    where = f"stages.{name}: " if name else ""
    if name:
        data = merge_dicts(data, {"stage": {"name": name}})
    try:
        cfg = from_dict(TrainConfig, data)
    except InputError as exc:
        raise InputError(f"{where}{exc}", path=file) from exc
    cfg = apply_overrides(cfg, list(overrides))
    init = cfg.stage.init
    if init.startswith(STAGE_REF_PREFIX):
        ref = init[len(STAGE_REF_PREFIX) :]
        if ref not in earlier:
            raise InputError(
                f"{where}stage.init: {init!r} must name an earlier stage of the recipe"
                f" (earlier: {', '.join(earlier) or 'none'})",
                path=file,
            )
    return cfg


def resolve_init(cfg: TrainConfig) -> Path | None:
    """The init checkpoint path of a stage (``stage:S`` -> S's exported model; a zoo name or
    ``hf://`` spec -> downloaded, verified and converted for the stage's model), or None."""
    init = cfg.stage.init
    if not init:
        return None
    if init.startswith(STAGE_REF_PREFIX):
        return Path(cfg.output.dir) / init[len(STAGE_REF_PREFIX) :] / FINAL_MODEL_NAME
    from vidpan.hub.resolve import is_remote_spec, resolve_weights

    if is_remote_spec(init):  # a zoo name or hf://: downloaded, verified, converted for this model
        target = Config(name=cfg.name, model=cfg.model, inference=cfg.inference)
        return resolve_weights(init, config=target).path
    return Path(init)


def validate_train_config(cfg: TrainConfig) -> None:
    """Cross-field checks the dataclass types cannot express (raise :class:`InputError`)."""
    s = cfg.solver
    checks = [
        (s.max_iter > 0, "solver.max_iter", f"expected > 0, got {s.max_iter}"),
        (s.base_lr > 0, "solver.base_lr", f"expected > 0, got {s.base_lr}"),
        (s.clips_per_batch > 0, "solver.clips_per_batch", f"expected > 0, got {s.clips_per_batch}"),
        (s.clip_grad_norm >= 0, "solver.clip_grad_norm", f"expected >= 0, got {s.clip_grad_norm}"),
        (s.warmup_iters >= 0, "solver.warmup_iters", f"expected >= 0, got {s.warmup_iters}"),
        (0 < s.warmup_factor <= 1, "solver.warmup_factor", f"expected in (0, 1], got {s.warmup_factor}"),
        (s.gamma > 0, "solver.gamma", f"expected > 0, got {s.gamma}"),
        (
            list(s.steps) == sorted(set(s.steps)) and all(x > 0 for x in s.steps),
            "solver.steps",
            f"expected strictly increasing positive iterations, got {list(s.steps)}",
        ),
        (s.backbone_multiplier >= 0, "solver.backbone_multiplier", "expected >= 0"),
        (cfg.output.log_period > 0, "output.log_period", f"expected > 0, got {cfg.output.log_period}"),
        (
            cfg.output.checkpoint_period > 0,
            "output.checkpoint_period",
            f"expected > 0, got {cfg.output.checkpoint_period}",
        ),
        (cfg.output.keep_checkpoints >= 1, "output.keep_checkpoints", "expected >= 1"),
        (cfg.eval.period >= 0, "eval.period", f"expected >= 0, got {cfg.eval.period}"),
        (cfg.data.num_workers >= 0, "data.num_workers", f"expected >= 0, got {cfg.data.num_workers}"),
        (cfg.loss.num_points > 0, "loss.num_points", f"expected > 0, got {cfg.loss.num_points}"),
        (cfg.seed >= 0, "seed", f"expected >= 0, got {cfg.seed}"),
        (bool(cfg.output.dir), "output.dir", "must not be empty"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise InputError(f"{key}: {message}")
    if cfg.stage.kind != "segmenter" and cfg.data.sampling.num_frames < 2:
        raise InputError(
            f"data.sampling.num_frames: the {cfg.stage.kind} stage learns over time and needs clips "
            f"of at least 2 frames, got {cfg.data.sampling.num_frames}"
        )
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device: expected auto, cpu or cuda, got {cfg.device!r}")
