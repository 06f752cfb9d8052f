"""ViT-CoMer-Adapter (seed paper §2.2): an MRFP before each extractor, extra extractors included;
the key layout of the `vipseg_vitg_comer` recipe's model; checkpointing with MRFPs."""

from __future__ import annotations

import dataclasses

import torch

from vidpan.config import AdapterConfig, ModelConfig, ViTConfig
from vidpan.models.backbone.adapter import InteractionStage, build_adapter_backbone
from vidpan.models.build import build_dvis
from vidpan.training.config import load_train_configs


def _tiny(**adapter: object) -> ModelConfig:
    vit = ViTConfig(embed_dim=32, depth=4, num_heads=2, patch_size=16, img_size=64, frozen=True)
    a = AdapterConfig(interaction_indexes=((0, 0), (1, 1), (2, 2), (3, 3)), deform_num_heads=2,
                      conv_inplane=8, use_mrfp=True, mrfp_ratio=2.0)  # fmt: skip
    return ModelConfig(vit=vit, adapter=dataclasses.replace(a, **adapter))  # type: ignore[arg-type]


def test_comer_recipe_key_layout() -> None:
    stages = load_train_configs("vipseg_vitg_comer")
    assert [c.stage.name for c in stages] == ["coco", "segmenter", "tracker", "refiner", "finetune", "vss"]
    cfg = stages[1].model
    assert cfg.adapter.use_mrfp and cfg.adapter.mrfp_extra_extractors and cfg.adapter.mrfp_ratio == 6.0
    with torch.device("meta"):
        model = build_dvis(cfg, parts=("segmenter",))
    shapes = {k: tuple(v.shape) for k, v in model.segmenter.backbone.state_dict().items()}
    mrfps = sorted({k.split(".mrfp.")[0] if ".mrfp." in k else k.split(".fc1.")[0]
                    for k in shapes if "mrfp" in k and k.endswith("fc1.weight")})  # fmt: skip
    assert mrfps == [
        "interactions.0",
        "interactions.1",
        "interactions.2",
        "interactions.3",
        "interactions.3.extra_mrfps.0",
        "interactions.3.extra_mrfps.1",
    ]
    c, hidden = 1536, 9216
    for prefix in ("interactions.2.mrfp.", "interactions.3.extra_mrfps.1."):
        assert shapes[prefix + "fc1.weight"] == (hidden, c) and shapes[prefix + "fc2.weight"] == (c, hidden)
        assert shapes[prefix + "dwconv.dwconv1.weight"] == (hidden // 2, 1, 3, 3)
        assert shapes[prefix + "dwconv.dwconv2.weight"] == (hidden // 2, 1, 5, 5)
        assert shapes[prefix + "dwconv.bn3.running_var"] == (hidden,)
    per_mrfp = sum(v.numel() for k, v in model.segmenter.backbone.state_dict().items()
                   if k.startswith("interactions.0.mrfp.") and "running" not in k and "num_batches" not in k)  # fmt: skip
    assert per_mrfp == 2 * hidden * c + hidden + c + 3 * (hidden // 2) * (9 + 25 + 2) + 3 * 2 * hidden
    assert not any(k.startswith(("interactions.0.extra_mrfps", "interactions.2.extra_mrfps")) for k in shapes)


def test_mrfp_runs_before_each_extra_extractor() -> None:
    model = build_adapter_backbone(_tiny())
    stage = model.interactions[3]
    assert isinstance(stage, InteractionStage) and len(stage.extra_mrfps) == 2
    one_per_stage = build_adapter_backbone(_tiny(mrfp_extra_extractors=False)).interactions[3]
    assert isinstance(one_per_stage, InteractionStage) and len(one_per_stage.extra_mrfps) == 0
    # The second extra MRFP's output replaces c: zero it and the last extractor sees zeros.
    with torch.no_grad():
        stage.extra_mrfps[1].fc2.weight.zero_()
        stage.extra_mrfps[1].fc2.bias.zero_()
    stage.eval()
    grid, c = (2, 2), torch.randn(1, 21, 32)
    ref, feat = torch.rand(1, 21, 1, 2), torch.randn(1, 4, 32)
    with torch.no_grad():
        got = stage(c, ref, feat, (2, 2), grid, False)
        expected = stage.extra_extractors[1](torch.zeros_like(c), ref, feat, (2, 2), grid)
    torch.testing.assert_close(got, expected)


def test_checkpointing_with_mrfp_gives_same_gradients() -> None:
    torch.manual_seed(0)
    a = build_adapter_backbone(_tiny())
    b = build_adapter_backbone(_tiny(grad_checkpoint=True))
    b.load_state_dict(a.state_dict())
    images = torch.randn(1, 3, 64, 64)
    for m in (a, b):
        m.train()
        sum(x.sum() for x in m(images).levels()).backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        if pa.grad is not None:
            torch.testing.assert_close(pa.grad, pb.grad, msg=name)
    assert b.interactions[3].extra_mrfps[0].fc1.weight.grad is not None
