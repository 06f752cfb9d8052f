"""DINOv2 vision transformer (ViT-S/B/L/g), with a stage-wise API for the frozen adapter backbone.

Follows ``facebookresearch/dinov2`` ``dinov2/models/vision_transformer.py`` and ``dinov2/layers``
(read for facts, written anew): pre-norm blocks ``x += ls1(attn(norm1(x))); x += ls2(mlp(norm2(x)))``
with LayerScale, LayerNorm eps 1e-6, GELU MLP (S/B/L) or fused SwiGLU (g: ``w12`` C→2·hidden,
``w3`` hidden→C, hidden = ((int(4C·2/3) + 7) // 8) · 8 = 4096 for C = 1536), optional register
tokens, and an unused ``mask_token`` (official checkpoints carry it). Parameter names are the
official ones so DINOv2 ``.pth`` files load 1:1 (``vidpan.models.checkpoint``).

Position embeddings. The table covers the pretraining grid M × M (M = img_size / patch_size,
37 for 518/14 and for DVIS++'s 592/16). For another grid (h, w) = (H // p, W // p) the patch part
is resized bicubically, in float32, exactly as the official ``interpolate_pos_encoding``:

* ``interpolate_offset > 0`` (DINOv2, offset 0.1): ``scale_factor = ((h + 0.1) / M, (w + 0.1) / M)``
  with ``antialias=False``. PyTorch uses the given scale factors for the sampling coordinates, so
  this is *not* the same as ``size=(h, w)``.
* ``interpolate_offset == 0`` (DINOv2 with registers): ``size=(h, w)`` with ``antialias=True``.

The table is used unchanged when the token count equals M² and the image is square (the official
shortcut, compared on pixel sizes). Note: ``transformers`` 5.x ``Dinov2Model`` resizes with
``size=(h, w)`` and no offset (older releases used the offset); that rule is this module with
``interpolate_offset=0.0, interpolate_antialias=False``. ``Dinov2WithRegistersModel`` matches the
official registers rule. Register tokens are inserted after the cls token *after* the position
embedding is added (they have no position embedding).

Patch modes: native 14 (official weights) and DVIS++'s 16 (``img_size`` 592 so the 37 × 37 table
loads unchanged, kernel resized 14 → 16 at conversion; DVIS++ interpolates with the offset rule).
The patch convolution floors: pixels beyond the last full patch are ignored (as DINOv2's own
ViT-Adapter does with patch 14 on inputs padded to multiples of 32).

Frozen mode (``frozen=True``): parameters have ``requires_grad=False``, the module stays in eval
mode whatever ``train()`` is asked, and ``prepare_tokens`` / ``run_blocks`` / ``forward_features``
run under ``torch.no_grad()`` so training keeps no ViT activations.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vidpan.config import ViTConfig
from vidpan.ops.linear import Linear

# Official DINOv2 architectures (``dinov2/hub/backbones.py``): all use 64-channel heads.
DINOV2_ARCHS: dict[str, dict[str, int | str]] = {
    "vits14": {"embed_dim": 384, "depth": 12, "num_heads": 6, "ffn": "mlp"},
    "vitb14": {"embed_dim": 768, "depth": 12, "num_heads": 12, "ffn": "mlp"},
    "vitl14": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "ffn": "mlp"},
    "vitg14": {"embed_dim": 1536, "depth": 40, "num_heads": 24, "ffn": "swiglu"},
}


def dinov2_config(
    arch: str, *, registers: bool = False, patch_size: int = 14, img_size: int = 518, frozen: bool = True
) -> ViTConfig:
    """The :class:`ViTConfig` of an official DINOv2 backbone (``vits14`` … ``vitg14``).

    ``registers=True`` gives the ``*_reg`` variants (4 registers, offset 0.0, antialias). DVIS++'s
    patch-16 mode is ``patch_size=16, img_size=592``.
    """
    if arch not in DINOV2_ARCHS:
        raise ValueError(f"unknown DINOv2 architecture {arch!r} (expected one of {sorted(DINOV2_ARCHS)})")
    a = DINOV2_ARCHS[arch]
    ffn: Literal["mlp", "swiglu"] = "swiglu" if a["ffn"] == "swiglu" else "mlp"
    return ViTConfig(
        embed_dim=int(a["embed_dim"]),
        depth=int(a["depth"]),
        num_heads=int(a["num_heads"]),
        ffn=ffn,
        patch_size=patch_size,
        img_size=img_size,
        num_register_tokens=4 if registers else 0,
        interpolate_offset=0.0 if registers else 0.1,
        interpolate_antialias=registers,
        layerscale_init=1.0,
        frozen=frozen,
    )


def swiglu_hidden_dim(dim: int, mlp_ratio: float) -> int:
    """DINOv2 ``SwiGLUFFNFused`` width: two thirds of the MLP width, rounded up to a multiple of 8."""
    return (int(int(dim * mlp_ratio) * 2 / 3) + 7) // 8 * 8


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (``patch_embed.proj``)."""

    def __init__(self, *, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """[N, 3, H, W] -> ([N, h*w, C], (h, w)) with h = H // patch, w = W // patch."""
        x = self.proj(images)  # [N, C, h, w]
        grid = (int(x.shape[2]), int(x.shape[3]))
        return x.flatten(2).transpose(1, 2), grid


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection, computed by SDPA."""

    def __init__(self, *, dim: int, num_heads: int, qkv_bias: bool, proj_bias: bool) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"width {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, S, C] -> [N, S, C] (S tokens)."""
        n, s, c = x.shape
        # [N, S, 3C] -> [3, N, M, S, C/M]
        qkv = self.qkv(x).reshape(n, s, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # [N, M, S, C/M]
        return self.proj(out.transpose(1, 2).reshape(n, s, c))


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` (ViT-S/B/L)."""

    def __init__(self, *, dim: int, hidden_dim: int, bias: bool) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim, bias=bias)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """``w3(SiLU(x1) * x2)`` with ``[x1, x2] = w12(x)`` (ViT-g; DINOv2 ``SwiGLUFFNFused``)."""

    def __init__(self, *, dim: int, hidden_dim: int, bias: bool) -> None:
        super().__init__()
        self.w12 = Linear(dim, 2 * hidden_dim, bias=bias)
        self.w3 = Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    """Per-channel residual scale ``gamma``."""

    def __init__(self, *, dim: int, init_value: float) -> None:
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        ffn: Literal["mlp", "swiglu"],
        layerscale_init: float,
        qkv_bias: bool,
        proj_bias: bool,
        ffn_bias: bool,
        norm_eps: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim=dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias)
        self.ls1 = LayerScale(dim=dim, init_value=layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp: nn.Module
        if ffn == "swiglu":
            self.mlp = SwiGLUFFN(dim=dim, hidden_dim=swiglu_hidden_dim(dim, mlp_ratio), bias=ffn_bias)
        elif ffn == "mlp":
            self.mlp = Mlp(dim=dim, hidden_dim=int(dim * mlp_ratio), bias=ffn_bias)
        else:
            raise ValueError(f"unknown ffn {ffn!r} (expected 'mlp' or 'swiglu')")
        self.ls2 = LayerScale(dim=dim, init_value=layerscale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, S, C] -> [N, S, C]."""
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


@dataclass
class ViTFeatures:
    """Output of :meth:`VisionTransformer.forward_features` (token order: cls, registers, patches)."""

    tokens: torch.Tensor  # [N, 1+R+h*w, C] after the final norm
    prenorm: torch.Tensor  # [N, 1+R+h*w, C] before the final norm
    grid: tuple[int, int]  # (h, w) patch grid
    num_prefix_tokens: int  # 1 + R

    @property
    def cls_token(self) -> torch.Tensor:
        """[N, C] normalised cls token."""
        return self.tokens[:, 0]

    @property
    def register_tokens(self) -> torch.Tensor:
        """[N, R, C] normalised register tokens."""
        return self.tokens[:, 1 : self.num_prefix_tokens]

    @property
    def patch_tokens(self) -> torch.Tensor:
        """[N, h*w, C] normalised patch tokens (row-major over the grid)."""
        return self.tokens[:, self.num_prefix_tokens :]


class VisionTransformer(nn.Module):
    """DINOv2 ViT with official parameter names and stage-wise execution.

    Args:
        embed_dim, depth, num_heads, mlp_ratio: architecture (C, blocks, heads, MLP width ratio).
        ffn: ``"mlp"`` (GELU MLP) or ``"swiglu"`` (fused SwiGLU, ViT-g).
        patch_size: 14 (native DINOv2) or 16 (DVIS++ mode).
        img_size: pretraining image size; the position table covers (img_size // patch_size)².
        num_register_tokens: R register tokens (0 or 4 in official models).
        interpolate_offset, interpolate_antialias: position-table resize rule (module docstring).
        layerscale_init: initial LayerScale value (checkpoints overwrite it).
        qkv_bias, proj_bias, ffn_bias: biases of the attention and FFN projections.
        norm_eps: LayerNorm epsilon.
        frozen: eval + no_grad + ``requires_grad=False`` (see module docstring).
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        ffn: Literal["mlp", "swiglu"] = "mlp",
        patch_size: int = 14,
        img_size: int = 518,
        num_register_tokens: int = 0,
        interpolate_offset: float = 0.1,
        interpolate_antialias: bool = False,
        layerscale_init: float = 1e-5,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        norm_eps: float = 1e-6,
        frozen: bool = False,
    ) -> None:
        super().__init__()
        if num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {num_register_tokens}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.pos_grid = img_size // patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_offset = interpolate_offset
        self.interpolate_antialias = interpolate_antialias
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=3, embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid**2 + 1, embed_dim))
        self.register_tokens: nn.Parameter | None = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens else None
        )
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # kept for checkpoints; unused
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                ffn=ffn,
                layerscale_init=layerscale_init,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                norm_eps=norm_eps,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.reset_parameters()
        self.frozen = False
        self.set_frozen(frozen)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patch tokens: cls + registers."""
        return 1 + self.num_register_tokens

    def reset_parameters(self) -> None:
        """DINOv2 init: trunc-normal(0.02) position table and Linear weights, tiny cls/registers."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        nn.init.zeros_(self.mask_token)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, LayerScale):
                nn.init.constant_(module.gamma, module.init_value)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze (eval, no grad) or unfreeze the whole ViT."""
        self.frozen = frozen
        self.requires_grad_(not frozen)
        if frozen:
            super().train(False)

    def train(self, mode: bool = True) -> VisionTransformer:
        """A frozen ViT stays in eval mode (no dropout/drop-path exists, but callers may rely on it)."""
        super().train(mode and not self.frozen)
        return self

    def _grad_context(self) -> contextlib.AbstractContextManager[None]:
        return torch.no_grad() if self.frozen else contextlib.nullcontext()

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (h, w) of an H × W image (the patch convolution floors)."""
        return height // self.patch_size, width // self.patch_size

    def interpolate_pos_embed(self, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        """Position embedding for an H × W image: [1, 1 + h*w, C] (cls entry first)."""
        h, w = self.grid_size(height, width)
        m = self.pos_grid
        if h * w == m * m and height == width:
            return self.pos_embed.to(dtype)
        pos = self.pos_embed.float()
        table = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)  # [1, C, M, M]
        if self.interpolate_offset:
            scale = ((h + self.interpolate_offset) / m, (w + self.interpolate_offset) / m)
            table = F.interpolate(
                table, scale_factor=scale, mode="bicubic", antialias=self.interpolate_antialias
            )
        else:
            table = F.interpolate(table, size=(h, w), mode="bicubic", antialias=self.interpolate_antialias)
        if tuple(table.shape[-2:]) != (h, w):
            raise RuntimeError(f"position table resized to {tuple(table.shape[-2:])}, expected {(h, w)}")
        patch_pos = table.permute(0, 2, 3, 1).reshape(1, h * w, -1)  # [1, C, h, w] -> [1, h*w, C]
        return torch.cat([pos[:, :1], patch_pos], dim=1).to(dtype)

    def prepare_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch embedding + cls + position embedding + registers.

        Args:
            images: [N, 3, H, W] normalised images.

        Returns:
            tokens [N, 1+R+h*w, C] (cls, registers, patches) and the grid (h, w).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
        with self._grad_context():
            patches, grid = self.patch_embed(images)  # [N, h*w, C]
            n = patches.shape[0]
            x = torch.cat([self.cls_token.expand(n, -1, -1).to(patches.dtype), patches], dim=1)
            x = x + self.interpolate_pos_embed(images.shape[2], images.shape[3], x.dtype)
            if self.register_tokens is not None:
                registers = self.register_tokens.expand(n, -1, -1).to(x.dtype)
                x = torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)
        return x, grid

    def run_blocks(self, tokens: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Run blocks ``start .. stop-1`` (half-open, Python slice) without the final norm.

        Args:
            tokens: [N, 1+R+h*w, C].

        Returns:
            [N, 1+R+h*w, C].
        """
        if not 0 <= start <= stop <= self.depth:
            raise ValueError(f"block range [{start}, {stop}) outside 0..{self.depth}")
        with self._grad_context():
            for block in self.blocks[start:stop]:
                tokens = block(tokens)
        return tokens

    def forward_features(self, images: torch.Tensor) -> ViTFeatures:
        """All blocks, then the final norm (the official ``forward_features`` / HF ``last_hidden_state``).

        Args:
            images: [N, 3, H, W].
        """
        tokens, grid = self.prepare_tokens(images)
        prenorm = self.run_blocks(tokens, 0, self.depth)
        with self._grad_context():
            normed = self.norm(prenorm)
        return ViTFeatures(
            tokens=normed, prenorm=prenorm, grid=grid, num_prefix_tokens=self.num_prefix_tokens
        )

    def forward(self, images: torch.Tensor) -> ViTFeatures:
        """Same as :meth:`forward_features`."""
        return self.forward_features(images)


def build_vit(cfg: ViTConfig) -> VisionTransformer:
    """Build the ViT described by ``cfg``."""
    if not math.isfinite(cfg.interpolate_offset) or cfg.interpolate_offset < 0:
        raise ValueError(f"interpolate_offset must be >= 0, got {cfg.interpolate_offset}")
    return VisionTransformer(
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        ffn=cfg.ffn,
        patch_size=cfg.patch_size,
        img_size=cfg.img_size,
        num_register_tokens=cfg.num_register_tokens,
        interpolate_offset=cfg.interpolate_offset,
        interpolate_antialias=cfg.interpolate_antialias,
        layerscale_init=cfg.layerscale_init,
        qkv_bias=cfg.qkv_bias,
        proj_bias=cfg.proj_bias,
        ffn_bias=cfg.ffn_bias,
        norm_eps=cfg.norm_eps,
        frozen=cfg.frozen,
    )
