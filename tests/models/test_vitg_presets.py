"""The two ViT-g presets on the meta device: `vitg-dvis` (DVIS++'s adapter design, the paper's) and
`vitg` (native patch 14). Parameter counts follow from the shapes, computed here from first
principles (C = 1536, 6 extractors: one per stage + 2 extra in the last)."""

from __future__ import annotations

import torch

from vidpan.config import load_config
from vidpan.models.build import build_dvis

C = 1536
VITG14 = (
    1_136_480_768  # every tensor of the official dinov2_vitg14 checkpoint (tests/models/backbone/test_vit.py)
)


def _counts(preset: str) -> tuple[int, int, dict[str, tuple[int, ...]]]:
    with torch.device("meta"):
        model = build_dvis(load_config(preset).model)
    vit = sum(p.numel() for p in model.segmenter.backbone.vit.parameters())
    adapter = sum(
        p.numel() for n, p in model.segmenter.backbone.named_parameters() if not n.startswith("vit.")
    )
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return vit, adapter, shapes


def test_vitg_dvis_against_vitg() -> None:
    vit16, adapter16, s16 = _counts("vitg-dvis")
    vit14, adapter14, s14 = _counts("vitg")
    cfg = load_config("vitg-dvis").model
    assert (cfg.vit.patch_size, cfg.vit.img_size, cfg.adapter.value_ratio, cfg.adapter.deform_num_heads) == (
        16,
        592,
        1.0,
        24,
    )
    assert cfg.adapter.interaction_indexes == ((0, 9), (10, 19), (20, 29), (30, 39))
    # ViT: only the patch kernel differs (3 x 16 x 16 instead of 3 x 14 x 14 per output channel);
    # the 37 x 37 + 1 position table is the same (592 / 16 = 518 / 14 = 37).
    assert vit14 == VITG14
    assert vit16 == VITG14 + C * 3 * (16 * 16 - 14 * 14)
    vit_pos = "segmenter.backbone.vit.pos_embed"
    assert s16[vit_pos] == s14[vit_pos] == (1, 37 * 37 + 1, C)
    assert s16["segmenter.backbone.vit.patch_embed.proj.weight"] == (C, 3, 16, 16)
    # Adapter: full-width value / output projections in the 6 extractors.
    full = 2 * (C * C + C)
    half = (C * C // 2 + C // 2) + (C // 2 * C + C)
    assert adapter16 - adapter14 == 6 * (full - half)
    prefix = "segmenter.backbone.interactions.3.extra_extractors.1.attn."
    assert s16[prefix + "value_proj.weight"] == (C, C) and s14[prefix + "value_proj.weight"] == (C // 2, C)
    assert s16[prefix + "sampling_offsets.weight"] == (24 * 1 * 4 * 2, C)  # 24 heads, 1 level, 4 points
    # Everything but the ViT is the same model.
    assert {k for k in s16 if "attn.value_proj" not in k and "attn.output_proj" not in k} == {
        k for k in s14 if "attn.value_proj" not in k and "attn.output_proj" not in k
    }
