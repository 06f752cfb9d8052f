"""Post-norm transformer layers shared by the Mask2Former decoder, the tracker and the refiner.

These mirror Mask2Former's ``SelfAttentionLayer`` / ``CrossAttentionLayer`` / ``FFNLayer``
(post-norm, dropout 0 at inference), including the parameter names (``self_attn``,
``multihead_attn``, ``norm``, ``linear1``, ``linear2``) so DVIS++ checkpoints load without
renaming. All tensors are batch-first ``[B, N, C]`` (the reference is sequence-first; we convert
at the boundary of the converters, not here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidpan.ops.linear import Linear


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class SelfAttentionLayer(nn.Module):
    """``x = LN(x + MHA(q=x+pos, k=x+pos, v=x))``."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        *,
        pos: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, N, C]; pos: [B, N, C] or None; attn_mask: [B*heads, N, N] bool (True = blocked)."""
        q = k = _with_pos(x, pos)
        out = self.self_attn(
            q, k, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False
        )[0]
        return self.norm(x + self.dropout(out))


class CrossAttentionLayer(nn.Module):
    """``x = LN(x + MHA(q=x+query_pos, k=memory+pos, v=memory))``."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        *,
        pos: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, Q, C]; memory: [B, N, C]; attn_mask: [B*heads, Q, N], bool (True = blocked) or additive float (-inf = blocked)."""
        out = self.multihead_attn(
            _with_pos(x, query_pos),
            _with_pos(memory, pos),
            memory,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
        )[0]
        return self.norm(x + self.dropout(out))


class FFNLayer(nn.Module):
    """``x = LN(x + Linear(ReLU(Linear(x))))``."""

    def __init__(self, *, dim: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear1 = Linear(dim, dim_feedforward)
        self.linear2 = Linear(dim_feedforward, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., C] -> [..., C]."""
        out = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm(x + self.dropout(out))
