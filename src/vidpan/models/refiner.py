"""DVIS temporal refiner (offline stage): refines the tracked queries of a whole video (or a
long-video chunk) with temporal attention and convolution, and predicts one class per track.

Follows DVIS++ ``dvis_Plus/refiner.py:TemporalRefiner`` (reference notes §1.6). Per layer:

1. long-term temporal self-attention: each track attends over its own T frames (batch B·Q);
2. short-term temporal convolution: Conv1d(k5) → ReLU → Conv1d(k3), both "same" with
   replicate padding, residual + LayerNorm;
3. object self-attention over the Q tracks of each frame (batch B·T);
4. cross-attention from the tracks of frame t to the segmenter's un-normed embeddings of
   frame t (batch B·T);
5. FFN.

Heads: ``decoder_norm``; per-frame masks ``mask_embed(LN(x))`` · raw mask features (no
projection), computed ``mask_window`` frames at a time at inference; video-level class:
softmax over T of ``activation_proj(LN(x))`` pools ``LN(x)`` over time, ``class_embed`` of the
pooled vector is repeated over the T frames. Parameter names equal the reference's, so a
DVIS++ checkpoint maps onto this module by stripping the ``refiner.`` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vidpan.config import RefinerConfig
from vidpan.layers.attention import CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from vidpan.layers.mlp import MLP
from vidpan.ops.linear import Linear
from vidpan.structures import TrackPrediction


@dataclass
class RefinerOutput:
    """Refiner output for a video (or a chunk of one)."""

    class_logits: torch.Tensor  # [B, T, Q, K+1] video-level logits repeated over T
    mask_logits: torch.Tensor | None  # [B, T, Q, h, w] (None when no mask features were given)
    embeds: torch.Tensor  # [B, T, Q, C] decoder_norm of the last layer
    # Training only: predictions of layers 0..L-2 (deep supervision); empty in eval mode.
    aux: tuple[TrackPrediction, ...] = ()


class TemporalRefiner(nn.Module):
    """DVIS temporal refiner (see the module docstring).

    Args:
        hidden_dim: track width C.
        num_layers: refiner layers.
        num_heads: attention heads.
        dim_feedforward: FFN width.
        mask_dim: channels of the segmenter's mask features.
        num_classes: K (the class head has K+1 outputs).
        mask_window: frames per mask einsum at inference (bounds the working set).
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
        mask_window: int = 3,
    ) -> None:
        super().__init__()
        if mask_window < 1:
            raise ValueError(f"mask_window must be >= 1, got {mask_window}")
        self.num_layers = num_layers
        self.mask_window = mask_window
        self.transformer_time_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(dim=hidden_dim, num_heads=num_heads) for _ in range(num_layers)
        )
        # Sequential indices 0 / 2 are the reference's parameter names (1 is the ReLU).
        self.conv_short_aggregate_layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(hidden_dim, hidden_dim, kernel_size=5, padding="same", padding_mode="replicate"),
                nn.ReLU(),
                nn.Conv1d(hidden_dim, hidden_dim, kernel_size=3, padding="same", padding_mode="replicate"),
            )
            for _ in range(num_layers)
        )
        self.conv_norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(num_layers))
        self.transformer_obj_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(dim=hidden_dim, num_heads=num_heads) for _ in range(num_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(dim=hidden_dim, num_heads=num_heads) for _ in range(num_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(dim=hidden_dim, dim_feedforward=dim_feedforward) for _ in range(num_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(input_dim=hidden_dim, hidden_dim=hidden_dim, output_dim=mask_dim, num_layers=3)
        self.activation_proj = Linear(hidden_dim, 1)
        # As the reference: xavier-uniform for the matrices of the attention / FFN layers.
        for layers in (
            self.transformer_time_self_attention_layers,
            self.transformer_obj_self_attention_layers,
            self.transformer_cross_attention_layers,
            self.transformer_ffn_layers,
        ):
            for p in layers.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def _layer(self, i: int, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """x: [B, T, Q, C]; memory: [B*T, Q, C] -> [B, T, Q, C]."""
        batch, frames, queries, channels = x.shape
        # Long-term temporal attention: [B, T, Q, C] -> [B*Q, T, C]
        y = x.permute(0, 2, 1, 3).reshape(batch * queries, frames, channels)
        y = self.transformer_time_self_attention_layers[i](y)
        # Short-term temporal conv on [B*Q, C, T], residual + LN over C.
        y = y.transpose(1, 2)
        y = self.conv_norms[i]((self.conv_short_aggregate_layers[i](y) + y).transpose(1, 2))  # [B*Q, T, C]
        # Objects of one frame: [B*Q, T, C] -> [B, Q, T, C] -> [B*T, Q, C]
        y = (
            y.reshape(batch, queries, frames, channels)
            .transpose(1, 2)
            .reshape(batch * frames, queries, channels)
        )
        y = self.transformer_obj_self_attention_layers[i](y)
        y = self.transformer_cross_attention_layers[i](y, memory)
        y = self.transformer_ffn_layers[i](y)
        return y.reshape(batch, frames, queries, channels)

    def forward(
        self,
        instance_embeds: torch.Tensor,
        frame_embeds: torch.Tensor,
        mask_features: torch.Tensor | None,
        *,
        mask_device: torch.device | None = None,
    ) -> RefinerOutput:
        """Refine the tracks of a video.

        Args:
            instance_embeds: [B, T, Q, C] tracker embeddings (un-normed last layer, slot order).
            frame_embeds: [B, T, Q, C] segmenter un-normed embeddings ``[q; reid(LN(q))]``.
            mask_features: [B, T, C_m, h, w] raw segmenter mask features (may live on another
                device, e.g. CPU; moved ``mask_window`` frames at a time), or None for no masks.
            mask_device: where the inference masks are gathered (default: the embeddings' device).

        Returns:
            :class:`RefinerOutput`; in training mode every layer is predicted (``aux`` holds
            layers 0..L-2) and masks are computed in one go.
        """
        batch, frames, queries, channels = instance_embeds.shape
        memory = frame_embeds.reshape(batch * frames, queries, channels)  # [B*T, Q, C]
        x = instance_embeds
        outs = []
        for i in range(self.num_layers):
            x = self._layer(i, x, memory)
            outs.append(x)
        if self.training:
            preds = [self._predict_all(o, mask_features) for o in outs]
            last = preds[-1]
            return RefinerOutput(
                class_logits=last.class_logits,
                mask_logits=last.mask_logits,
                embeds=self.decoder_norm(outs[-1]),
                aux=tuple(preds[:-1]),
            )
        normed = self.decoder_norm(outs[-1])
        masks = None
        if mask_features is not None:
            chunks = []
            for start in range(0, frames, self.mask_window):
                stop = min(start + self.mask_window, frames)
                chunk = self.predict_masks(normed[:, start:stop], mask_features[:, start:stop])
                chunks.append(chunk if mask_device is None else chunk.to(mask_device))
            masks = torch.cat(chunks, dim=1)
        return RefinerOutput(class_logits=self.predict_class(normed), mask_logits=masks, embeds=normed)

    def predict_class(self, normed: torch.Tensor) -> torch.Tensor:
        """Video-level class: [B, T, Q, C] normed embeddings -> [B, T, Q, K+1] (same for all T)."""
        weights = self.activation_proj(normed).softmax(dim=1)  # [B, T, Q, 1], softmax over T
        pooled = (normed * weights).sum(dim=1, keepdim=True)  # [B, 1, Q, C]
        return self.class_embed(pooled).expand(-1, normed.shape[1], -1, -1)

    def predict_masks(self, normed: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
        """[B, t, Q, C] normed embeddings · [B, t, C_m, h, w] raw mask features -> [B, t, Q, h, w].

        Public so that a streaming caller can compute masks chunk by chunk itself.
        """
        embed = self.mask_embed(normed)
        return torch.einsum("btqc,btchw->btqhw", embed, mask_features.to(embed.device, embed.dtype))

    def _predict_all(self, x: torch.Tensor, mask_features: torch.Tensor | None) -> TrackPrediction:
        normed = self.decoder_norm(x)
        masks = None if mask_features is None else self.predict_masks(normed, mask_features)
        return TrackPrediction(class_logits=self.predict_class(normed), mask_logits=masks)


def build_refiner(config: RefinerConfig, *, num_classes: int, mask_dim: int) -> TemporalRefiner:
    """Config → :class:`TemporalRefiner` (``num_classes`` = K, ``mask_dim`` = pixel-decoder width)."""
    return TemporalRefiner(
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        dim_feedforward=config.dim_feedforward,
        mask_dim=mask_dim,
        num_classes=num_classes,
        mask_window=config.mask_window,
    )
