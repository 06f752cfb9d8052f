"""Tests of the masked-attention transformer decoder (vidpan.models.transformer_decoder).

Parity with the DVIS++ fixture (sizes read from meta.json):

- ``test_decoder_parity``: the full decoder on window 0 / frame 0, fed the fixture's stored
  pixel-decoder outputs (``pixel_decoder.frame0.ms0..2`` and ``segmenter.w0.mask_features[0]``),
  against the final class / mask logits, both embedding variants, every auxiliary class logit
  and the last auxiliary mask logits. The fixture stores multi-scale features for frame 0 only,
  so the layers themselves are checked on that frame.
- ``test_decoder_heads_parity_all_frames``: for every frame of every window, the prediction
  heads (final LayerNorm, class head, mask head . mask features, re-id MLP) applied to the
  stored last-layer queries (the first C channels of ``pred_embds_without_norm``) and the stored
  mask features must reproduce the stored class / mask logits and both embeddings; the
  learnable-query prediction (aux 0) is checked for all frames of window 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from vidpan.models.transformer_decoder import MaskedAttentionDecoder, attention_mask_from_logits

ATOL = 1e-4
PREFIX = "sem_seg_head.predictor."


def strip_prefix(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Reference checkpoint keys -> ours: our parameter names equal the reference's."""
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def logits_to_ours(x: torch.Tensor) -> torch.Tensor:
    return x[0]  # (1, T, Q, K+1) -> [T, Q, K+1]


def masks_to_ours(x: torch.Tensor) -> torch.Tensor:
    return x[0].transpose(0, 1)  # (1, Q, T, h, w) -> [T, Q, h, w]


def embeds_to_ours(x: torch.Tensor) -> torch.Tensor:
    return x[0].permute(1, 2, 0)  # (1, 2C, T, Q) -> [T, Q, 2C]


def build_from_meta(meta: dict[str, Any]) -> MaskedAttentionDecoder:
    cfg = meta["config"]
    dec = cfg["decoder"]
    assert not dec["pre_norm"] and dec["reid_branch"]
    assert dec["n_predictions"] == dec["n_transformer_layers"] + 1
    return MaskedAttentionDecoder(
        in_channels=cfg["pixel_decoder"]["convs_dim"],
        hidden_dim=dec["hidden_dim"],
        num_queries=dec["num_queries"],
        num_classes=dec["num_classes"],
        num_heads=dec["nheads"],
        dim_feedforward=dec["dim_feedforward"],
        num_layers=dec["n_transformer_layers"],
        mask_dim=cfg["pixel_decoder"]["mask_dim"],
        reid_hidden_dim=dec["reid_hidden_dim"],
        reid_layers=dec["num_reid_head_layers"],
    )


@pytest.fixture(scope="module")
def fixture_model(
    dvis_fixture: Path,
) -> tuple[MaskedAttentionDecoder, dict[str, torch.Tensor], dict[str, Any]]:
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    weights = load_file(dvis_fixture / "weights.safetensors")
    outputs = load_file(dvis_fixture / "outputs.safetensors")
    model = build_from_meta(meta).eval()
    model.load_state_dict(strip_prefix(weights, PREFIX), strict=True)
    return model, outputs, meta


def test_decoder_parity(
    fixture_model: tuple[MaskedAttentionDecoder, dict[str, torch.Tensor], dict[str, Any]],
) -> None:
    model, outputs, meta = fixture_model
    ms = [outputs[f"pixel_decoder.frame0.ms{i}"] for i in range(3)]
    mask_features = outputs["segmenter.w0.mask_features"][:1]
    with torch.no_grad():
        out = model(ms, mask_features)
    n_layers = meta["config"]["decoder"]["n_transformer_layers"]
    assert len(out.aux) == n_layers
    pairs = {
        "pred_logits": (out.class_logits, logits_to_ours(outputs["segmenter.w0.pred_logits"])[:1]),
        "pred_masks": (out.mask_logits, masks_to_ours(outputs["segmenter.w0.pred_masks"])[:1]),
        "pred_embds": (out.embeds, embeds_to_ours(outputs["segmenter.w0.pred_embds"])[:1]),
        "pred_embds_without_norm": (
            out.embeds_unnormed,
            embeds_to_ours(outputs["segmenter.w0.pred_embds_without_norm"])[:1],
        ),
    }
    for j, aux in enumerate(out.aux):
        pairs[f"aux{j}.pred_logits"] = (
            aux.class_logits,
            logits_to_ours(outputs[f"segmenter.w0.aux{j}.pred_logits"])[:1],
        )
    last = n_layers - 1
    pairs[f"aux{last}.pred_masks"] = (
        out.aux[last].mask_logits,
        masks_to_ours(outputs[f"segmenter.w0.aux{last}.pred_masks"])[:1],
    )
    diffs = {}
    for name, (ours, ref) in pairs.items():
        assert ours.shape == ref.shape, name
        diffs[name] = (ours - ref).abs().max().item()
    print("decoder frame-0 max abs diffs:", diffs)
    for name, diff in diffs.items():
        assert diff <= ATOL, f"{name}: max abs diff {diff:.3g} > {ATOL}"

    # Inference path: attention masks from mask features resized per level, no aux predictions.
    with torch.no_grad():
        fast = model(ms, mask_features, return_aux=False)
    for name, ours in [
        ("pred_logits", fast.class_logits),
        ("pred_masks", fast.mask_logits),
        ("pred_embds", fast.embeds),
        ("pred_embds_without_norm", fast.embeds_unnormed),
    ]:
        diff = (ours - pairs[name][1]).abs().max().item()
        assert diff <= ATOL, f"return_aux=False {name}: max abs diff {diff:.3g} > {ATOL}"

    # The check has teeth: the fixture's attention masks matter, so a decoder without masked
    # attention (threshold 0 blocks nothing) must miss the stored logits.
    threshold = model.mask_threshold
    model.mask_threshold = 0.0
    try:
        with torch.no_grad():
            unmasked = model(ms, mask_features)
    finally:
        model.mask_threshold = threshold
    assert (unmasked.mask_logits - pairs["pred_masks"][1]).abs().max() > 100 * ATOL


def test_decoder_heads_parity_all_frames(
    fixture_model: tuple[MaskedAttentionDecoder, dict[str, torch.Tensor], dict[str, Any]],
) -> None:
    model, outputs, meta = fixture_model
    hidden = meta["config"]["decoder"]["hidden_dim"]
    diffs: dict[str, float] = {}

    def record(name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
        assert ours.shape == ref.shape, name
        diffs[name] = max(diffs.get(name, 0.0), (ours - ref).abs().max().item())

    for w in range(meta["windows"]["n_windows"]):
        key = f"segmenter.w{w}."
        unnormed = embeds_to_ours(outputs[key + "pred_embds_without_norm"])  # [T, Q, 2C]
        queries = unnormed[..., :hidden]
        with torch.no_grad():
            class_logits, mask_logits = model.predict(queries, outputs[key + "mask_features"])
            embeds, embeds_unnormed = model.embeddings(queries)
        record("pred_logits", class_logits, logits_to_ours(outputs[key + "pred_logits"]))
        record("pred_masks", mask_logits, masks_to_ours(outputs[key + "pred_masks"]))
        record("pred_embds", embeds, embeds_to_ours(outputs[key + "pred_embds"]))
        record("pred_embds_without_norm", embeds_unnormed, unnormed)
    # The learnable-query prediction does not depend on the frame's features for its class.
    t0 = outputs["segmenter.w0.mask_features"].shape[0]
    with torch.no_grad():
        learnable = model.query_feat.weight[None].expand(t0, -1, -1)
        aux0_logits, _ = model.predict(learnable, outputs["segmenter.w0.mask_features"])
    record("aux0.pred_logits", aux0_logits, logits_to_ours(outputs["segmenter.w0.aux0.pred_logits"]))
    print("decoder heads (all frames) max abs diffs:", diffs)
    for name, diff in diffs.items():
        assert diff <= ATOL, f"{name}: max abs diff {diff:.3g} > {ATOL}"


def _tiny(**kwargs: Any) -> MaskedAttentionDecoder:
    args: dict[str, Any] = dict(
        in_channels=16,
        hidden_dim=16,
        num_queries=5,
        num_classes=7,
        num_heads=2,
        dim_feedforward=32,
        num_layers=4,
        mask_dim=12,
        reid_hidden_dim=24,
        reid_layers=3,
    )
    args.update(kwargs)
    return MaskedAttentionDecoder(**args)


def _inputs(
    n: int, h: int, w: int, channels: int = 16, mask_dim: int = 12
) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ms = [torch.randn(n, channels, h // s, w // s, generator=g) for s in (32, 16, 8)]
    return ms, torch.randn(n, mask_dim, h // 4, w // 4, generator=g)


def test_decoder_shapes_and_aux() -> None:
    model = _tiny().eval()
    ms, mf = _inputs(3, 64, 96)
    with torch.no_grad():
        out = model(ms, mf)
        no_aux = model(ms, mf, return_aux=False)
    assert out.class_logits.shape == (3, 5, 8)
    assert out.mask_logits.shape == (3, 5, 16, 24)
    assert out.embeds.shape == out.embeds_unnormed.shape == (3, 5, 32)
    assert len(out.aux) == 4
    assert all(a.class_logits.shape == (3, 5, 8) and a.mask_logits.shape == (3, 5, 16, 24) for a in out.aux)
    assert no_aux.aux == ()
    # Without aux the attention masks come from resized features instead of resized logits:
    # equal up to rounding.
    torch.testing.assert_close(no_aux.mask_logits, out.mask_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(no_aux.class_logits, out.class_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(no_aux.embeds, out.embeds, atol=1e-5, rtol=0)
    # Both variants share the re-id half; the first half differs by the final LayerNorm only.
    torch.testing.assert_close(out.embeds[..., 16:], out.embeds_unnormed[..., 16:])
    torch.testing.assert_close(model.decoder_norm(out.embeds_unnormed[..., :16]), out.embeds[..., :16])


def test_decoder_input_projection_when_widths_differ() -> None:
    model = _tiny(in_channels=10).eval()
    assert all(isinstance(p, torch.nn.Conv2d) for p in model.input_proj)
    ms, mf = _inputs(1, 32, 64, channels=10)
    with torch.no_grad():
        out = model(ms, mf)
    assert out.class_logits.shape == (1, 5, 8)
    assert not any(k.startswith("input_proj") for k in _tiny().state_dict())


def test_decoder_frames_are_independent() -> None:
    model = _tiny().eval()
    ms, mf = _inputs(3, 64, 64)
    with torch.no_grad():
        together = model(ms, mf)
        alone = model([x[2:] for x in ms], mf[2:])
    torch.testing.assert_close(together.mask_logits[2:], alone.mask_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(together.embeds[2:], alone.embeds, atol=1e-5, rtol=0)


def test_attention_mask_unblocks_fully_blocked_rows() -> None:
    logits = torch.full((1, 3, 4, 4), -5.0)
    logits[0, 1, :2] = 5.0  # query 1: top half allowed
    logits[0, 2] = 5.0  # query 2: everything allowed
    mask = attention_mask_from_logits(logits, (2, 2), threshold=0.5)
    assert mask.shape == (1, 3, 4) and mask.dtype == torch.bool
    assert not mask[0, 0].any()  # all blocked -> unblocked
    assert mask[0, 1].tolist() == [False, False, True, True]
    assert not mask[0, 2].any()


def test_fully_blocked_queries_attend_everywhere() -> None:
    """A decoder whose masks block everything must equal one with no masking at all."""
    model = _tiny().eval()
    with torch.no_grad():
        last = model.mask_embed.layers[-1]
        last.weight.zero_()
        last.bias.fill_(-1.0)
    ms, _ = _inputs(2, 64, 64)
    mf = torch.ones(2, 12, 16, 16)  # every mask logit = -12 -> every position blocked
    with torch.no_grad():
        blocked = model(ms, mf)
        model.mask_threshold = 0.0  # blocks nothing
        free = model(ms, mf)
    assert torch.isfinite(blocked.embeds).all()
    torch.testing.assert_close(blocked.embeds, free.embeds, atol=0, rtol=0)


def test_decoder_without_reid_layers_uses_identity() -> None:
    model = _tiny(reid_layers=0).eval()
    ms, mf = _inputs(1, 32, 32)
    with torch.no_grad():
        out = model(ms, mf)
    torch.testing.assert_close(out.embeds[..., :16], out.embeds[..., 16:])
