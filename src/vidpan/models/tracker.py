"""DVIS++ referring tracker (online stage): aligns the segmenter's per-frame queries to fixed
track slots and refines them with referring cross-attention.

Follows DVIS++ ``dvis_Plus/tracker.py:ReferringTracker_noiser`` (reference notes §1.3–§1.4):

* per layer: referring cross-attention ``LN(ID + MHA(q=reference, k=v=F_t))`` (no position
  embeddings) → self-attention over the Q tracks → FFN, all post-norm;
* the *reference* of frame t is ``ref_proj(final output of frame t−1)``, fixed for every layer;
  on the first frame of a video it is ``ref_proj(F_0)`` for layer 0 and ``ref_proj(previous
  layer output)`` for later layers;
* slots are assigned by Hungarian matching of the segmenter's normed embeddings against the
  previous frame's aligned ones (:func:`vidpan.models.association.match_embeddings`); the first
  frame keeps the segmenter's query order;
* heads: ``class_embed`` on ``[reference; LN(out)]``, ``mask_embed(LN(out))`` dotted with the
  mask features after a 1×1 ``mask_feature_proj``.

The module is stateless: everything carried from one call (window) to the next is in
:class:`TrackerState`. Parameter names equal the reference's, so a DVIS++ checkpoint maps onto
this module by stripping the ``tracker.`` prefix. Unlike DVIS++ (batch element 0 only), matching
is done per batch element; for one video per batch the results are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vidpan.config import TrackerConfig
from vidpan.layers.attention import FFNLayer, SelfAttentionLayer
from vidpan.layers.mlp import MLP
from vidpan.models.association import NOISE_MODES, NoiseMode, apply_identity_noise, match_embeddings
from vidpan.ops.linear import Linear
from vidpan.structures import TrackPrediction


@dataclass
class TrackerState:
    """What the tracker carries from one frame (and one window) to the next, per batch element."""

    last_frame_embeds: torch.Tensor  # [B, Q, C] segmenter normed embeddings aligned to the slots
    last_output: torch.Tensor  # [B, Q, C] final-layer (un-normed) output of the previous frame
    last_reference: torch.Tensor  # [B, Q, C] reference used for the previous frame
    num_frames: int  # frames processed so far in this video

    def detach(self) -> TrackerState:
        """A copy cut from the autograd graph (e.g. between training clips)."""
        return TrackerState(
            self.last_frame_embeds.detach(),
            self.last_output.detach(),
            self.last_reference.detach(),
            self.num_frames,
        )


@dataclass
class TrackerOutput:
    """Tracker output for the frames of one call (slot order = track identity)."""

    class_logits: torch.Tensor  # [B, T, Q, K+1] last layer
    mask_logits: torch.Tensor | None  # [B, T, Q, h, w] last layer (None if not requested)
    embeds: torch.Tensor  # [B, T, Q, C] un-normed last-layer output (refiner input)
    references: torch.Tensor  # [B, T, Q, C]
    # [B, T, Q] int64: per frame, the segmenter query behind each slot (the Hungarian
    # permutation), or — on frames noised in training — the supervision indices of the noise.
    indices: torch.Tensor
    noised: torch.Tensor  # [B, T] bool, frames whose layer-0 identity was noised (training)
    # Training only: predictions of layers 0..L-2 (deep supervision); empty in eval mode.
    aux: tuple[TrackPrediction, ...] = ()


class ReferringCrossAttentionLayer(nn.Module):
    """``out = LN(identity + MHA(query=reference, key=memory, value=memory))`` (post-norm).

    Separating the residual (the track's own embedding) from the attention query (the reference
    built from the previous frame) is DVIS's referring cross-attention; with identity == query
    it is an ordinary cross-attention layer.
    """

    def __init__(self, *, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, identity: torch.Tensor, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """identity, query: [B, Q, C]; memory: [B, N, C] -> [B, Q, C]."""
        out = self.multihead_attn(query, memory, memory, need_weights=False)[0]
        return self.norm(identity + self.dropout(out))


class ReferringTracker(nn.Module):
    """DVIS++ referring tracker (see the module docstring).

    Args:
        hidden_dim: track width C (= the segmenter's embedding width, 2× the decoder width with
            the re-id branch).
        num_layers: referring layers.
        num_heads: attention heads.
        dim_feedforward: FFN width.
        mask_dim: channels of the segmenter's mask features.
        num_classes: K (the class head has K+1 outputs).
        noise_mode: training noise (``none``, ``wa``, ``rs``, ``cc``); inactive in eval mode.
        noise_ratio: probability of noising a frame (frames after the first, layer 0 only).
    """

    def __init__(
        self,
        *,
        hidden_dim: int,
        num_layers: int,
        num_heads: int,
        dim_feedforward: int,
        mask_dim: int,
        num_classes: int,
        noise_mode: NoiseMode = "none",
        noise_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        self.num_layers = num_layers
        self.noise_mode: NoiseMode = noise_mode
        self.noise_ratio = noise_ratio
        self.transformer_cross_attention_layers = nn.ModuleList(
            ReferringCrossAttentionLayer(dim=hidden_dim, num_heads=num_heads) for _ in range(num_layers)
        )
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(dim=hidden_dim, num_heads=num_heads) for _ in range(num_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(dim=hidden_dim, dim_feedforward=dim_feedforward) for _ in range(num_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = Linear(2 * hidden_dim, num_classes + 1)
        self.mask_embed = MLP(input_dim=hidden_dim, hidden_dim=hidden_dim, output_dim=mask_dim, num_layers=3)
        self.ref_proj = MLP(input_dim=hidden_dim, hidden_dim=hidden_dim, output_dim=hidden_dim, num_layers=3)
        self.mask_feature_proj = nn.Conv2d(mask_dim, mask_dim, kernel_size=1)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the reference: xavier-uniform for every matrix of the transformer layers,
        # c2_xavier_fill (kaiming-uniform a=1, zero bias) for ref_proj; PyTorch defaults elsewhere.
        for layers in (
            self.transformer_cross_attention_layers,
            self.transformer_self_attention_layers,
            self.transformer_ffn_layers,
        ):
            for p in layers.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for layer in self.ref_proj.layers:
            assert isinstance(layer, nn.Linear)
            nn.init.kaiming_uniform_(layer.weight, a=1)
            nn.init.zeros_(layer.bias)

    def _layer(
        self, j: int, identity: torch.Tensor, query: torch.Tensor, memory: torch.Tensor
    ) -> torch.Tensor:
        x = self.transformer_cross_attention_layers[j](identity, query, memory)
        x = self.transformer_self_attention_layers[j](x)
        return self.transformer_ffn_layers[j](x)

    def forward(
        self,
        frame_embeds: torch.Tensor,
        frame_embeds_unnormed: torch.Tensor,
        mask_features: torch.Tensor | None,
        state: TrackerState | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[TrackerOutput, TrackerState]:
        """Track the T frames of one window.

        Args:
            frame_embeds: [B, T, Q, C] segmenter embeddings ``[LN(q); reid(LN(q))]`` (matching).
            frame_embeds_unnormed: [B, T, Q, C] ``[q; reid(LN(q))]`` (identity, key and value).
            mask_features: [B, T, C_m, h, w] segmenter mask features, or None to skip masks.
            state: state after the previous window of the same videos; None starts new videos.
            generator: CPU generator for the training noise (global RNG if None).

        Returns:
            (output for these T frames, state after the last frame).
        """
        batch, num_frames, num_queries, _ = frame_embeds.shape
        if frame_embeds_unnormed.shape != frame_embeds.shape:
            raise ValueError("frame_embeds and frame_embeds_unnormed must have the same shape")
        if num_frames == 0:
            raise ValueError("frame_embeds has no frames")
        noise_on = self.training and self.noise_mode != "none" and self.noise_ratio > 0
        batch_idx = torch.arange(batch, device=frame_embeds.device)[:, None]
        per_frame_layers: list[list[torch.Tensor]] = []  # [T][L] of [B, Q, C]
        references, indices, noised = [], [], []
        for t in range(num_frames):
            cur = frame_embeds[:, t]  # [B, Q, C]
            memory = frame_embeds_unnormed[:, t]  # [B, Q, C], segmenter order (never permuted)
            layers: list[torch.Tensor] = []
            if state is None:
                # First frame of the videos: slots = segmenter queries, no noise.
                perm = torch.arange(num_queries, device=cur.device).expand(batch, num_queries)
                frame_noised = torch.zeros(batch, dtype=torch.bool, device=cur.device)
                x = memory
                reference = self.ref_proj(memory)
                query = reference
                for j in range(self.num_layers):
                    x = self._layer(j, x, query if j == 0 else self.ref_proj(x), memory)
                    layers.append(x)
            else:
                perm = match_embeddings(state.last_frame_embeds, cur)
                if noise_on:
                    perm, x, frame_noised = apply_identity_noise(
                        perm, memory, mode=self.noise_mode, ratio=self.noise_ratio, generator=generator
                    )
                else:
                    frame_noised = torch.zeros(batch, dtype=torch.bool, device=cur.device)
                    x = memory[batch_idx, perm]
                reference = self.ref_proj(state.last_output)
                for j in range(self.num_layers):
                    x = self._layer(j, x, reference, memory)
                    layers.append(x)
            state = TrackerState(
                last_frame_embeds=cur[batch_idx, perm],
                last_output=x,
                last_reference=reference,
                num_frames=(0 if state is None else state.num_frames) + 1,
            )
            per_frame_layers.append(layers)
            references.append(reference)
            indices.append(perm)
            noised.append(frame_noised)
        assert state is not None

        refs = torch.stack(references, dim=1)  # [B, T, Q, C]
        # [T][L] x [B, Q, C] -> [L, B, T, Q, C]
        outs = torch.stack([torch.stack(layers, dim=0) for layers in per_frame_layers], dim=2)
        projected = None
        if mask_features is not None:
            # [B, T, C_m, h, w] -> [B*T, C_m, h, w] -> back
            projected = self.mask_feature_proj(mask_features.flatten(0, 1)).unflatten(0, (batch, num_frames))
        predicted = range(self.num_layers) if self.training else [self.num_layers - 1]
        preds = [self.predict(outs[j], refs, projected) for j in predicted]
        output = TrackerOutput(
            class_logits=preds[-1].class_logits,
            mask_logits=preds[-1].mask_logits,
            embeds=outs[-1],
            references=refs,
            indices=torch.stack(indices, dim=1),
            noised=torch.stack(noised, dim=1),
            aux=tuple(preds[:-1]),
        )
        return output, state

    def predict(
        self, x: torch.Tensor, references: torch.Tensor, mask_features: torch.Tensor | None
    ) -> TrackPrediction:
        """Heads on one layer's output.

        Args:
            x: [B, T, Q, C] layer output (un-normed).
            references: [B, T, Q, C].
            mask_features: [B, T, C_m, h, w] *projected* mask features, or None.
        """
        normed = self.decoder_norm(x)
        class_logits = self.class_embed(torch.cat([references, normed], dim=-1))
        masks = None
        if mask_features is not None:
            masks = torch.einsum("btqc,btchw->btqhw", self.mask_embed(normed), mask_features)
        return TrackPrediction(class_logits=class_logits, mask_logits=masks)


def build_tracker(config: TrackerConfig, *, num_classes: int, mask_dim: int) -> ReferringTracker:
    """Config → :class:`ReferringTracker` (``num_classes`` = K, ``mask_dim`` = pixel-decoder width)."""
    return ReferringTracker(
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        dim_feedforward=config.dim_feedforward,
        mask_dim=mask_dim,
        num_classes=num_classes,
        noise_mode=config.noise_mode,
        noise_ratio=config.noise_ratio,
    )
