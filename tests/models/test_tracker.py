"""ReferringTracker: parity with the DVIS++ fixture, matching and training-noise semantics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from vidpan.config import TrackerConfig
from vidpan.models.association import apply_identity_noise, match_embeddings
from vidpan.models.tracker import ReferringTracker, TrackerOutput, TrackerState, build_tracker

ATOL = 1e-4

# Checkpoint rename rules for DVIS++ -> vidpan tracker/refiner modules. Parameter names below the
# prefix are identical, so the rules are prefix-only (identity when the whole model keeps the
# attributes ``tracker`` / ``refiner``).
RENAME_RULES: dict[str, list[tuple[str, str]]] = {
    "tracker": [(r"^tracker\.", "")],
    "refiner": [(r"^refiner\.", "")],
}


def convert_submodule(weights: dict[str, torch.Tensor], module: str) -> dict[str, torch.Tensor]:
    """Keys of one DVIS++ submodule, renamed for the stand-alone vidpan module."""
    out = {}
    for key, value in weights.items():
        if not key.startswith(module + "."):
            continue
        for pattern, repl in RENAME_RULES[module]:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def load_fixture(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    meta = json.loads((path / "meta.json").read_text())
    return meta, load_file(path / "outputs.safetensors"), load_file(path / "weights.safetensors")


def to_btqc(x: torch.Tensor) -> torch.Tensor:
    """Reference embeddings (B, C, T, Q) -> [B, T, Q, C]."""
    return x.permute(0, 2, 3, 1)


def build_fixture_tracker(meta: dict[str, Any], weights: dict[str, torch.Tensor]) -> ReferringTracker:
    cfg = meta["config"]
    mode = cfg["tracker"]["noise_mode"].split()[0]
    config = TrackerConfig(
        hidden_dim=cfg["tracker"]["hidden"],
        num_layers=cfg["tracker"]["layers"],
        num_heads=cfg["tracker"]["nheads"],
        dim_feedforward=cfg["tracker"]["dim_feedforward"],
        noise_mode=mode,
    )
    tracker = build_tracker(
        config, num_classes=cfg["decoder"]["num_classes"], mask_dim=cfg["tracker"]["mask_dim"]
    )
    tracker.load_state_dict(convert_submodule(weights, "tracker"), strict=True)
    return tracker.eval()


def run_windows(
    tracker: ReferringTracker,
    outputs: dict[str, torch.Tensor],
    n_windows: int,
    query_perm: torch.Tensor | None = None,
) -> list[TrackerOutput]:
    """Run the tracker window by window on the stored segmenter outputs, carrying the state."""
    state: TrackerState | None = None
    results = []
    start = 0
    for i in range(n_windows):
        embeds = to_btqc(outputs[f"segmenter.w{i}.pred_embds"])
        unnormed = to_btqc(outputs[f"segmenter.w{i}.pred_embds_without_norm"])
        frames = embeds.shape[1]
        if query_perm is not None:
            # shuffled[..., t, q] = original[..., t, query_perm[t, q]]
            perm = query_perm[start : start + frames]  # [t, Q]
            t_idx = torch.arange(frames)[:, None]
            embeds = embeds[:, t_idx, perm]
            unnormed = unnormed[:, t_idx, perm]
        mask_features = outputs[f"segmenter.w{i}.mask_features"][None]
        with torch.no_grad():
            out, state = tracker(embeds, unnormed, mask_features, state)
        results.append(out)
        start += frames
    return results


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def test_tracker_parity(dvis_fixture: Path) -> None:
    meta, outputs, weights = load_fixture(dvis_fixture)
    tracker = build_fixture_tracker(meta, weights)
    n_windows = meta["windows"]["n_windows"]
    results = run_windows(tracker, outputs, n_windows)
    assert [r.embeds.shape[1] for r in results] == meta["windows"]["frames_per_window"]
    for i, out in enumerate(results):
        assert out.mask_logits is not None
        diffs = {
            "pred_logits": max_diff(out.class_logits, outputs[f"tracker.w{i}.pred_logits"]),
            "pred_masks": max_diff(out.mask_logits, outputs[f"tracker.w{i}.pred_masks"].transpose(1, 2)),
            "pred_embds": max_diff(out.embeds, to_btqc(outputs[f"tracker.w{i}.pred_embds"])),
            "pred_references": max_diff(out.references, to_btqc(outputs[f"tracker.w{i}.pred_references"])),
        }
        assert all(d <= ATOL for d in diffs.values()), (i, diffs)
    perm = torch.cat([r.indices[0] for r in results])
    assert torch.equal(perm, outputs["tracker.perm"])
    assert perm.tolist() == meta["tracker_permutations"]["per_frame"]


def test_tracker_shuffled_parity(dvis_fixture: Path) -> None:
    meta, outputs, weights = load_fixture(dvis_fixture)
    tracker = build_fixture_tracker(meta, weights)
    query_perm = outputs["tracker_shuffled.query_perm"]
    results = run_windows(tracker, outputs, meta["windows"]["n_windows"], query_perm=query_perm)
    perm = torch.cat([r.indices[0] for r in results])
    assert not torch.equal(perm, torch.arange(perm.shape[1]).expand_as(perm))  # matching really worked
    assert torch.equal(perm, outputs["tracker_shuffled.perm"])
    for i, out in enumerate(results):
        diffs = {
            "pred_logits": max_diff(out.class_logits, outputs[f"tracker_shuffled.w{i}.pred_logits"]),
            "pred_embds": max_diff(out.embeds, to_btqc(outputs[f"tracker_shuffled.w{i}.pred_embds"])),
            "pred_references": max_diff(
                out.references, to_btqc(outputs[f"tracker_shuffled.w{i}.pred_references"])
            ),
        }
        assert all(d <= ATOL for d in diffs.values()), (i, diffs)


def small_tracker(**kwargs: Any) -> ReferringTracker:
    torch.manual_seed(0)
    args: dict[str, Any] = dict(
        hidden_dim=16, num_layers=3, num_heads=2, dim_feedforward=32, mask_dim=8, num_classes=5
    )
    args.update(kwargs)
    return ReferringTracker(**args)


def random_clip(
    batch: int, frames: int, queries: int, channels: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, 1, queries, channels, generator=g)
    # Slowly drifting objects, shuffled per frame: matching must undo the shuffle.
    embeds = base + 0.05 * torch.randn(batch, frames, queries, channels, generator=g)
    unnormed = embeds * 2.0 + 0.1
    mask_features = torch.randn(batch, frames, 8, 6, 7, generator=g)
    return embeds, unnormed, mask_features


def test_match_embeddings_recovers_known_permutation() -> None:
    g = torch.Generator().manual_seed(1)
    previous = torch.randn(2, 12, 16, generator=g)
    perms = torch.stack([torch.randperm(12, generator=g) for _ in range(2)])
    # current[q] = previous[inverse[q]] -> the slot r object sits at current[perm[r]]
    current = torch.empty_like(previous)
    for b in range(2):
        current[b, perms[b]] = previous[b] * 1.7 + 0.01 * torch.randn(12, 16, generator=g)
    assert torch.equal(match_embeddings(previous, current), perms)
    # NaN costs (zero vectors are fine; NaN inputs become cost 0) do not crash.
    bad = current.clone()
    bad[0, 0] = float("nan")
    assert match_embeddings(previous, bad).shape == (2, 12)


def test_tracker_windows_equal_single_call_and_batch_is_per_video() -> None:
    tracker = small_tracker().eval()
    embeds, unnormed, mf = random_clip(2, 5, 6, 16)
    # Shuffle the queries of every frame differently in the two videos.
    g = torch.Generator().manual_seed(3)
    shuffles = torch.stack(
        [torch.stack([torch.randperm(6, generator=g) for _ in range(5)]) for _ in range(2)]
    )
    b_idx = torch.arange(2)[:, None, None]
    t_idx = torch.arange(5)[None, :, None]
    embeds, unnormed = embeds[b_idx, t_idx, shuffles], unnormed[b_idx, t_idx, shuffles]
    with torch.no_grad():
        whole, _ = tracker(embeds, unnormed, mf)
        first, state = tracker(embeds[:, :2], unnormed[:, :2], mf[:, :2])
        second, state2 = tracker(embeds[:, 2:], unnormed[:, 2:], mf[:, 2:], state)
        single, _ = tracker(embeds[1:], unnormed[1:], mf[1:])
    assert state2.num_frames == 5
    assert torch.equal(torch.cat([first.indices, second.indices], 1), whole.indices)
    assert torch.allclose(torch.cat([first.embeds, second.embeds], 1), whole.embeds, atol=1e-6)
    # Per-video matching: video 1 in a batch of 2 equals video 1 alone.
    assert torch.equal(whole.indices[1], single.indices[0])
    assert torch.allclose(whole.class_logits[1], single.class_logits[0], atol=1e-5)
    # The permutations undo the shuffle: slot r always holds the same underlying object.
    objects = torch.gather(shuffles, 2, whole.indices)  # original object id behind each slot
    assert torch.equal(objects, objects[:, :1].expand_as(objects))
    # First frame keeps the segmenter's query order.
    assert torch.equal(whole.indices[:, 0], torch.arange(6).expand(2, 6))


def capture_identities(tracker: ReferringTracker) -> tuple[list[list[torch.Tensor]], list[Any]]:
    """Record the identity argument of every referring layer call and every FFN output."""
    identities: list[list[torch.Tensor]] = [[] for _ in range(tracker.num_layers)]
    ffn_out: list[list[torch.Tensor]] = [[] for _ in range(tracker.num_layers)]
    handles = []
    for j in range(tracker.num_layers):
        handles.append(
            tracker.transformer_cross_attention_layers[j].register_forward_pre_hook(
                lambda _m, args, j=j: identities[j].append(args[0].detach().clone())
            )
        )
        handles.append(
            tracker.transformer_ffn_layers[j].register_forward_hook(
                lambda _m, _a, out, j=j: ffn_out[j].append(out.detach().clone())
            )
        )
    return identities, [ffn_out, handles]


@pytest.mark.parametrize("mode", ["wa", "rs", "cc"])
def test_noise_only_after_first_frame_and_only_layer0(mode: str) -> None:
    tracker = small_tracker(noise_mode=mode, noise_ratio=1.0).train()
    embeds, unnormed, mf = random_clip(2, 4, 10, 16, seed=5)
    identities, (ffn_out, handles) = capture_identities(tracker)
    gen = torch.Generator().manual_seed(0)
    out, _ = tracker(embeds, unnormed, mf, generator=gen)
    for h in handles:
        h.remove()
    assert len(out.aux) == tracker.num_layers - 1  # deep supervision in training
    assert out.noised.tolist() == [[False, True, True, True]] * 2
    # Frame 0: identity = segmenter queries in order, supervision indices = identity.
    assert torch.equal(identities[0][0], unnormed[:, 0])
    assert torch.equal(out.indices[:, 0], torch.arange(10).expand(2, 10))
    # Layers >= 1 start from the previous layer's output on every frame (never noised).
    for j in range(1, tracker.num_layers):
        for t in range(4):
            assert torch.equal(identities[j][t], ffn_out[j - 1][t])
    changed = False
    for t in range(1, 4):
        ident, feats, idx = identities[0][t], unnormed[:, t], out.indices[:, t]
        for b in range(2):
            if mode == "rs":
                assert torch.equal(ident[b], feats[b, idx[b]])
            elif mode == "wa":
                # Row q = w·F_q + (1 − w)·F_s for a shuffled query s; the supervision index is
                # s where w < 0.5, else q. Recover (s, w) by least squares over candidates s.
                for q in range(10):
                    row, own = ident[b, q], feats[b, q]
                    if torch.allclose(row, own, atol=1e-6):  # shuffled onto itself
                        assert int(idx[b, q]) == q
                        continue
                    d = own[None] - feats[b]  # [Q, C]
                    w = ((row[None] - feats[b]) * d).sum(1) / (d * d).sum(1).clamp_min(1e-12)
                    residual = (row[None] - feats[b] - w[:, None] * d).norm(dim=1)
                    residual[q] = float("inf")
                    s_best = int(residual.argmin())
                    assert float(residual[s_best]) < 1e-4
                    assert int(idx[b, q]) == (s_best if float(w[s_best]) < 0.5 else q)
            else:  # cc: a prefix of channels from the query, the rest from a shuffled one
                for q in range(10):
                    same = (ident[b, q] == feats[b, q]).int()
                    cut = int(same.cumprod(0).sum())
                    if cut == feats.shape[-1]:
                        assert idx[b, q] == q
                        continue
                    source = (ident[b, q, cut:] == feats[b, :, cut:]).all(dim=1).nonzero().flatten()
                    assert len(source) == 1
                    expected = int(source[0]) if cut < feats.shape[-1] // 2 else q
                    assert int(idx[b, q]) == expected
            changed |= not torch.equal(idx[b], torch.arange(10))
    assert changed  # the noise really permuted some supervision indices


def test_noise_inactive_in_eval_and_with_ratio_zero_and_reproducible() -> None:
    embeds, unnormed, mf = random_clip(1, 3, 8, 16, seed=2)
    reference = small_tracker().eval()
    with torch.no_grad():
        expected, _ = reference(embeds, unnormed, mf)
    for tracker in (
        small_tracker(noise_mode="wa", noise_ratio=1.0).eval(),
        small_tracker(noise_ratio=0.0).train(),
    ):
        out, _ = tracker(embeds, unnormed, mf)
        assert not out.noised.any()
        assert torch.equal(out.indices, expected.indices)
        assert torch.allclose(out.embeds, expected.embeds, atol=1e-6)
    noisy = small_tracker(noise_mode="rs", noise_ratio=0.5).train()
    runs = [noisy(embeds, unnormed, mf, generator=torch.Generator().manual_seed(7))[0] for _ in range(2)]
    assert torch.equal(runs[0].indices, runs[1].indices)
    assert torch.equal(runs[0].embeds, runs[1].embeds)


def test_apply_identity_noise_none_mode_keeps_matching() -> None:
    matched = torch.tensor([[2, 0, 1]])
    feats = torch.randn(1, 3, 4)
    idx, ident, noised = apply_identity_noise(matched, feats, mode="none", ratio=1.0)
    assert torch.equal(idx, matched)
    assert torch.equal(ident, feats[:, [2, 0, 1]])
    assert not noised.any()


def test_tracker_without_masks_and_shapes() -> None:
    tracker = small_tracker().eval()
    embeds, unnormed, mf = random_clip(1, 2, 4, 16)
    with torch.no_grad():
        out, state = tracker(embeds, unnormed, None)
        with_masks, _ = tracker(embeds, unnormed, mf)
    assert out.mask_logits is None
    assert with_masks.mask_logits is not None and with_masks.mask_logits.shape == (1, 2, 4, 6, 7)
    assert out.class_logits.shape == (1, 2, 4, 6)
    assert out.references.shape == out.embeds.shape == (1, 2, 4, 16)
    assert state.last_output.shape == (1, 4, 16)
    assert out.aux == ()
