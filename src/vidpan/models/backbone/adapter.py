"""ViT-Adapter without injectors: turns a frozen DINOv2 ViT into a 1/4..1/32 feature pyramid.

Follows DVIS++ ``mask2former/modeling/backbones_vitAdapter/adapter.py`` (``DinoV2ViTAdapter`` with
``InteractionBlockWithCls_Efficient``; reference §2) and, for the patch-14 grids, DINOv2's own
``dinov2/eval/segmentation_m2f/models/backbones/{vit_adapter,adapter_modules}.py``. Read for facts,
written anew. Parameter names match DVIS++ so its checkpoints load after a prefix rename.

Data flow for an input [N, 3, H, W] (H, W multiples of 32), adapter grid (H_c, W_c) = (H/16, W/16):

1. Spatial prior module (conv stem, BatchNorm) → c1 [N, C, H/4, W/4] and token sequences
   c2, c3, c4 at 1/8, 1/16, 1/32; ``level_embed`` is added and c = [c2; c3; c4] has 21·n tokens
   (n = H/32 · W/32).
2. ViT tokens = patch embed + cls + position + registers (``VisionTransformer.prepare_tokens``).
3. Four interaction stages: run the stage's ViT blocks (no grad when the ViT is frozen; cls and
   registers ride along, the final ViT norm is never applied), then c ← Extractor(c, ViT patch
   tokens); the last stage runs ``extra_extractors`` more extractors with the same inputs. Each
   stage's ViT patch tokens become a map ``outs[i]`` [N, C, h, w].
4. c is split back into maps; c1 += ConvTranspose(c2); with ``add_vit_feature`` the four ViT maps
   are resized bilinearly (align_corners False) to 4·H_c, 2·H_c, H_c, H_c/2 and added; BatchNorm
   ``norm1..norm4`` → ``FeaturePyramid`` res2..res5, all C channels.

Extractor: ``c += MSDeformAttn(LN_q(c), ref, LN_f(vit tokens))`` with one value level (the ViT
grid) and reference points at the centre of each c token on its own level; then
``c += ConvFFN(LN_ffn(c))`` where ConvFFN = fc1 → depthwise 3×3 (one conv shared by the 1/8, 1/16,
1/32 maps) → GELU → fc2. LayerNorm eps 1e-6. ``value_ratio`` 1.0 = DVIS++ (its ``ratio`` is
ignored), 0.5 = ViT-Adapter / DINOv2.

Token grids (design choice). The adapter grid is always H/16. The ViT grid is (h, w) =
(H // p, W // p): with DVIS++'s patch 16 the two coincide and this module reproduces DVIS++
exactly (H_c is even because H is a multiple of 32, so resizing to the explicit sizes equals
DVIS++'s ×4, ×2, ×0.5 scale factors bit for bit, and the 1/16 map is used as is). With native
patch 14 we keep two grids as DINOv2's own ViT-Adapter does: the extractor's value spatial shape
is the ViT grid (floor(H/14), floor(W/14)), reference points stay on the adapter levels (both
normalised to [0, 1]), and the ViT maps are resized to the adapter sizes. One difference from
DINOv2's adapter: its TIMM ViT resizes the position table with ``size=(h, w)`` and no offset,
while our ViT uses the rule configured on it (official DINOv2 offset 0.1 by default; set
``interpolate_offset=0`` to match DINOv2's adapter).

ViT-CoMer MRFP (``use_mrfp``, off by default; ViT-CoMer ``comer_modules.py``): fc1 (C → C·ratio)
→ MultiDWConv (per level, separate depthwise 3×3 on the first half of the channels and 5×5 on the
second half, then BatchNorm + GELU) → GELU → fc2. The seed paper (§2.2, Table 2) applies "the
MRFP module before each Extractor module": one MRFP before each stage's extractor
(``interactions.<i>.mrfp``) and, our reading of "each" for the last stage, one before each of its
extra extractors too (``interactions.3.extra_mrfps.<j>``; ``mrfp_extra_extractors``, default on;
off = one MRFP per stage, as ViT-CoMer has one per interaction block). We keep CoMer's form
``c ← MRFP(c)`` without a residual, as CoMer's ``CTIBlock`` does.

Activation checkpointing (``grad_checkpoint``, DVIS++ ``VIT_ADAPTER.WITH_CP``): each (MRFP +)
extractor is recomputed in backward instead of keeping its activations (training only; the frozen
ViT runs under no_grad and keeps nothing anyway).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from vidpan.config import ModelConfig
from vidpan.models.backbone.vit import VisionTransformer, build_vit
from vidpan.ops.linear import Linear, linear, pointwise_conv, transposed_conv2x2
from vidpan.ops.ms_deform_attn import MSDeformAttn
from vidpan.ops.resize import resize_bilinear
from vidpan.structures import FeaturePyramid

Grid = tuple[int, int]


def level_sizes(grid: Grid) -> list[Grid]:
    """Sizes of the 1/8, 1/16, 1/32 maps for an adapter grid (H_c, W_c) at 1/16."""
    hc, wc = grid
    return [(2 * hc, 2 * wc), (hc, wc), (hc // 2, wc // 2)]


def tokens_to_maps(x: torch.Tensor, grid: Grid) -> list[torch.Tensor]:
    """[N, 21n, C] -> maps [N, C, 2H_c, 2W_c], [N, C, H_c, W_c], [N, C, H_c/2, W_c/2]."""
    sizes = level_sizes(grid)
    parts = x.split([h * w for h, w in sizes], dim=1)
    return [
        p.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
        for p, (h, w) in zip(parts, sizes, strict=True)
    ]


def maps_to_tokens(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`tokens_to_maps`: [N, C, h_l, w_l] per level -> [N, sum h_l w_l, C]."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


def reference_points(grid: Grid, device: torch.device) -> torch.Tensor:
    """Normalised (x, y) centres of every c token on its own level: [1, 21n, 1, 2]."""
    points = []
    for h, w in level_sizes(grid):
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1))
    return torch.cat(points, dim=0)[None, :, None, :]


class SpatialPriorModule(nn.Module):
    """Conv stem giving c1 (1/4) as a map and c2..c4 (1/8..1/32) as tokens, all projected to C."""

    def __init__(self, *, inplanes: int, embed_dim: int) -> None:
        super().__init__()

        def conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.stem = nn.Sequential(
            *conv_bn_relu(3, inplanes, 2),
            *conv_bn_relu(inplanes, inplanes, 1),
            *conv_bn_relu(inplanes, inplanes, 1),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.conv2 = nn.Sequential(*conv_bn_relu(inplanes, 2 * inplanes, 2))
        self.conv3 = nn.Sequential(*conv_bn_relu(2 * inplanes, 4 * inplanes, 2))
        self.conv4 = nn.Sequential(*conv_bn_relu(4 * inplanes, 4 * inplanes, 2))
        self.fc1 = nn.Conv2d(inplanes, embed_dim, kernel_size=1)
        self.fc2 = nn.Conv2d(2 * inplanes, embed_dim, kernel_size=1)
        self.fc3 = nn.Conv2d(4 * inplanes, embed_dim, kernel_size=1)
        self.fc4 = nn.Conv2d(4 * inplanes, embed_dim, kernel_size=1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """[N, 3, H, W] -> c1 [N, C, H/4, W/4], c2 [N, HW/64, C], c3 [N, HW/256, C], c4 [N, HW/1024, C]."""
        *convs, pool = self.stem
        f1 = images
        for layer in convs:
            f1 = layer(f1)
        # Max-pool on a channels-last copy (PyTorch's NCHW CPU max-pool is ~2.5x slower; a max is
        # the same in any layout). conv2 gets NCHW back (a conv's summation order depends on the
        # layout); the 1x1 projection reads the channels-last map as is.
        f1 = pool(f1.contiguous(memory_format=torch.channels_last))
        f2 = self.conv2(f1.contiguous())
        f3 = self.conv3(f2)
        f4 = self.conv4(f3)
        # The 1x1 projections as channel products (c1 comes out channels-last, see ``pointwise_conv``).
        c1 = pointwise_conv(f1, self.fc1.weight, self.fc1.bias)
        c2, c3, c4 = (
            linear(f.permute(0, 2, 3, 1), fc.weight.flatten(1), fc.bias).flatten(1, 2)  # [N, h*w, C]
            for fc, f in ((self.fc2, f2), (self.fc3, f3), (self.fc4, f4))
        )
        return c1, c2, c3, c4


class SharedDWConv(nn.Module):
    """One depthwise 3×3 conv applied to each of the 1/8, 1/16, 1/32 token maps (shared weights)."""

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """[N, 21n, C] -> [N, 21n, C]."""
        return maps_to_tokens([self.dwconv(m) for m in tokens_to_maps(x, grid)])


class ConvFFN(nn.Module):
    """fc1 → shared depthwise conv → GELU → fc2."""

    def __init__(self, *, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.dwconv = SharedDWConv(dim=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """[N, 21n, C] -> [N, 21n, C]."""
        return self.fc2(self.act(self.dwconv(self.fc1(x), grid)))


class MultiDWConv(nn.Module):
    """ViT-CoMer MultiDWConv: per level 3×3 on half the channels, 5×5 on the rest."""

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        if dim % 2 != 0:
            raise ValueError(f"MRFP hidden width must be even, got {dim}")
        half = dim // 2
        for level in range(3):
            self.add_module(f"dwconv{2 * level + 1}", nn.Conv2d(half, half, 3, padding=1, groups=half))
            self.add_module(f"dwconv{2 * level + 2}", nn.Conv2d(half, half, 5, padding=2, groups=half))
            self.add_module(f"bn{level + 1}", nn.BatchNorm2d(dim))
            self.add_module(f"act{level + 1}", nn.GELU())

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """[N, 21n, C'] -> [N, 21n, C']."""
        out = []
        for level, m in enumerate(tokens_to_maps(x, grid)):
            first, second = m.chunk(2, dim=1)
            conv3 = getattr(self, f"dwconv{2 * level + 1}")
            conv5 = getattr(self, f"dwconv{2 * level + 2}")
            y = torch.cat([conv3(first), conv5(second)], dim=1)
            out.append(getattr(self, f"act{level + 1}")(getattr(self, f"bn{level + 1}")(y)))
        return maps_to_tokens(out)


class MRFP(nn.Module):
    """ViT-CoMer multi-receptive-field feature pyramid: fc1 → MultiDWConv → GELU → fc2 (no residual)."""

    def __init__(self, *, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.dwconv = MultiDWConv(dim=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """[N, 21n, C] -> [N, 21n, C]."""
        return self.fc2(self.act(self.dwconv(self.fc1(x), grid)))


class Extractor(nn.Module):
    """Adapter tokens read the ViT tokens by one-level deformable attention, then a ConvFFN."""

    def __init__(
        self, *, dim: int, num_heads: int, num_points: int, value_ratio: float, cffn_ratio: float
    ) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MSDeformAttn(
            dim=dim, num_levels=1, num_heads=num_heads, num_points=num_points, value_ratio=value_ratio
        )
        self.ffn = ConvFFN(dim=dim, hidden_dim=int(dim * cffn_ratio))
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(
        self, c: torch.Tensor, ref: torch.Tensor, feat: torch.Tensor, feat_grid: Grid, grid: Grid
    ) -> torch.Tensor:
        """c [N, 21n, C], ref [1, 21n, 1, 2], feat [N, h*w, C] on ``feat_grid`` -> [N, 21n, C]."""
        c = c + self.attn(self.query_norm(c), ref, self.feat_norm(feat), [feat_grid])
        return c + self.ffn(self.ffn_norm(c), grid)


class InteractionStage(nn.Module):
    """Optional MRFP, one extractor and (last stage) extra extractors."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        num_points: int,
        value_ratio: float,
        cffn_ratio: float,
        num_extra_extractors: int,
        mrfp_hidden_dim: int | None,
        mrfp_extra_extractors: bool = True,
    ) -> None:
        super().__init__()

        def extractor() -> Extractor:
            return Extractor(
                dim=dim,
                num_heads=num_heads,
                num_points=num_points,
                value_ratio=value_ratio,
                cffn_ratio=cffn_ratio,
            )

        self.mrfp = MRFP(dim=dim, hidden_dim=mrfp_hidden_dim) if mrfp_hidden_dim else None
        self.extractor = extractor()
        self.extra_extractors = nn.ModuleList(extractor() for _ in range(num_extra_extractors))
        extra_mrfps = num_extra_extractors if mrfp_hidden_dim and mrfp_extra_extractors else 0
        self.extra_mrfps = nn.ModuleList(
            MRFP(dim=dim, hidden_dim=mrfp_hidden_dim) for _ in range(extra_mrfps) if mrfp_hidden_dim
        )

    def forward(
        self,
        c: torch.Tensor,
        ref: torch.Tensor,
        feat: torch.Tensor,
        feat_grid: Grid,
        grid: Grid,
        checkpoint: bool,
    ) -> torch.Tensor:
        """c [N, 21n, C], feat [N, h*w, C] -> c [N, 21n, C]."""
        extractors = [self.extractor, *self.extra_extractors]
        mrfps: list[MRFP | None] = [self.mrfp, *self.extra_mrfps]
        mrfps += [None] * (len(extractors) - len(mrfps))
        for mrfp, extractor in zip(mrfps, extractors, strict=True):
            if checkpoint and torch.is_grad_enabled():
                c = torch.utils.checkpoint.checkpoint(
                    _mrfp_extractor, mrfp, extractor, c, ref, feat, feat_grid, grid, use_reentrant=False
                )
            else:
                c = _mrfp_extractor(mrfp, extractor, c, ref, feat, feat_grid, grid)
        return c


def _mrfp_extractor(
    mrfp: MRFP | None,
    extractor: Extractor,
    c: torch.Tensor,
    ref: torch.Tensor,
    feat: torch.Tensor,
    feat_grid: Grid,
    grid: Grid,
) -> torch.Tensor:
    """Optional MRFP, then the extractor: c [N, 21n, C] -> [N, 21n, C]."""
    if mrfp is not None:
        c = mrfp(c, grid)
    return extractor(c, ref, feat, feat_grid, grid)


@dataclass
class StageIntermediates:
    """What one interaction stage produced (for parity tests and debugging)."""

    vit_out: torch.Tensor  # [N, C, h, w] ViT patch tokens after the stage's blocks (no final norm)
    cls: torch.Tensor  # [N, 1, C] cls token after the stage's blocks
    c: torch.Tensor  # [N, 21n, C] adapter tokens after the stage's extractor(s)


@dataclass
class AdapterIntermediates:
    """Intermediate tensors of :meth:`ViTAdapter.forward_with_intermediates`."""

    vit_tokens_in: torch.Tensor  # [N, 1+R+h*w, C] patch embed + cls + position (+ registers)
    spm_c2: torch.Tensor  # [N, HW/64, C] before level_embed
    spm_c3: torch.Tensor  # [N, HW/256, C]
    spm_c4: torch.Tensor  # [N, HW/1024, C]
    stages: tuple[StageIntermediates, ...]


class ViTAdapter(nn.Module):
    """ViT-Adapter (no injectors) around a :class:`VisionTransformer` held at ``self.vit``.

    Args:
        vit: the ViT (usually frozen).
        interaction_indexes: inclusive ViT block ranges of the four stages, contiguous from block 0.
        deform_num_heads, n_points: extractor deformable attention heads and points.
        conv_inplane: spatial-prior-module width (64 in DVIS++).
        cffn_ratio: ConvFFN hidden width / C.
        value_ratio: deformable-attention value width / C (1.0 DVIS++, 0.5 ViT-Adapter/DINOv2).
        extra_extractors: extra extractors in the last stage (2).
        add_vit_feature: add the resized ViT stage maps to the pyramid.
        use_mrfp, mrfp_ratio: ViT-CoMer MRFP before each stage's extractor, hidden = C · ratio.
        mrfp_extra_extractors: with ``use_mrfp``, an MRFP before each extra extractor too.
        grad_checkpoint: recompute extractors in backward (saves activation memory in training).
    """

    def __init__(
        self,
        *,
        vit: VisionTransformer,
        interaction_indexes: Sequence[Sequence[int]],
        deform_num_heads: int,
        n_points: int = 4,
        conv_inplane: int = 64,
        cffn_ratio: float = 0.25,
        value_ratio: float = 1.0,
        extra_extractors: int = 2,
        add_vit_feature: bool = True,
        use_mrfp: bool = False,
        mrfp_ratio: float = 6.0,
        mrfp_extra_extractors: bool = True,
        grad_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.interaction_indexes = _check_indexes(interaction_indexes, vit.depth)
        self.add_vit_feature = add_vit_feature
        self.grad_checkpoint = grad_checkpoint
        dim = vit.embed_dim
        self.embed_dim = dim
        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = SpatialPriorModule(inplanes=conv_inplane, embed_dim=dim)
        last = len(self.interaction_indexes) - 1
        self.interactions = nn.ModuleList(
            InteractionStage(
                dim=dim,
                num_heads=deform_num_heads,
                num_points=n_points,
                value_ratio=value_ratio,
                cffn_ratio=cffn_ratio,
                num_extra_extractors=extra_extractors if i == last else 0,
                mrfp_hidden_dim=int(dim * mrfp_ratio) if use_mrfp else None,
                mrfp_extra_extractors=mrfp_extra_extractors,
            )
            for i in range(len(self.interaction_indexes))
        )
        self.up = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        self.norm1 = nn.BatchNorm2d(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.norm3 = nn.BatchNorm2d(dim)
        self.norm4 = nn.BatchNorm2d(dim)
        self.reset_parameters()
        self.vit = vit

    def reset_parameters(self) -> None:
        """DVIS++ / ViT-Adapter init of the adapter parts (the ViT keeps its own)."""
        for part in (self.spm, self.interactions, self.up):
            for m in part.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        for m in self.interactions.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, images: torch.Tensor) -> FeaturePyramid:
        """Feature pyramid of normalised images.

        Args:
            images: [N, 3, H, W], H and W multiples of 32.

        Returns:
            FeaturePyramid with res2..res5 [N, C, H/4, W/4] … [N, C, H/32, W/32].
        """
        return self._run(images, record=False)[0]

    def forward_with_intermediates(self, images: torch.Tensor) -> tuple[FeaturePyramid, AdapterIntermediates]:
        """:meth:`forward` plus the intermediate tensors (ViT input tokens, SPM tokens, each stage)."""
        pyramid, inter = self._run(images, record=True)
        assert inter is not None
        return pyramid, inter

    def _run(
        self, images: torch.Tensor, *, record: bool
    ) -> tuple[FeaturePyramid, AdapterIntermediates | None]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
        n, _, height, width = images.shape
        if height % 32 or width % 32:
            raise ValueError(
                f"input size {height}x{width} must be a multiple of 32 (pad it, e.g. size_divisibility)"
            )
        dim = self.embed_dim
        grid = (height // 16, width // 16)  # adapter grid (H_c, W_c)

        c1, c2, c3, c4 = self.spm(images)
        c = torch.cat([c2 + self.level_embed[0], c3 + self.level_embed[1], c4 + self.level_embed[2]], dim=1)
        ref = reference_points(grid, images.device)

        tokens, vit_grid = self.vit.prepare_tokens(images)
        tokens_in = tokens
        prefix = self.vit.num_prefix_tokens
        outs: list[torch.Tensor] = []
        stages: list[StageIntermediates] = []
        checkpoint = self.grad_checkpoint and self.training
        for stage, (first, last) in zip(self.interactions, self.interaction_indexes, strict=True):
            tokens = self.vit.run_blocks(tokens, first, last + 1)
            feat = tokens[:, prefix:]  # [N, h*w, C]
            c = stage(c, ref, feat, vit_grid, grid, checkpoint)
            outs.append(feat.transpose(1, 2).reshape(n, dim, *vit_grid))  # [N, h*w, C] -> [N, C, h, w]
            if record:
                stages.append(StageIntermediates(vit_out=outs[-1], cls=tokens[:, :1], c=c))

        m2, m3, m4 = tokens_to_maps(c, grid)
        # ConvTranspose2d(2, stride 2) of the 1/8 tokens as one product (channels-last result).
        size2 = level_sizes(grid)[0]
        # In place on fresh tensors: fewer full-resolution temporaries alive at once.
        m1 = transposed_conv2x2(c[:, : size2[0] * size2[1]], self.up.weight, self.up.bias, size2).add_(c1)
        maps = [m1, m2, m3, m4]
        if self.add_vit_feature:
            for i, (size, out) in enumerate(
                zip([(4 * grid[0], 4 * grid[1]), *level_sizes(grid)], outs, strict=True)
            ):
                if tuple(out.shape[-2:]) != size:
                    # Level 0 is added in place (its layout is m1's), so its resize can skip the
                    # layout copy. The others keep F.interpolate's contiguous result: it sets the
                    # layout of res3..res5, which changes the summation order of the pixel
                    # decoder's input convolutions.
                    if i == 0:
                        out = resize_bilinear(out, size)
                    else:
                        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
                maps[i] = maps[i].add_(out) if i == 0 else maps[i] + out  # maps[1:] are views of c
        pyramid = FeaturePyramid(
            res2=batch_norm(self.norm1, maps[0]),
            res3=batch_norm(self.norm2, maps[1]),
            res4=batch_norm(self.norm3, maps[2]),
            res5=batch_norm(self.norm4, maps[3]),
        )
        inter = None
        if record:
            inter = AdapterIntermediates(
                vit_tokens_in=tokens_in, spm_c2=c2, spm_c3=c3, spm_c4=c4, stages=tuple(stages)
            )
        return pyramid, inter


def batch_norm(norm: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)``; in eval mode as one per-channel multiply-add (BatchNorm is slow on channels-last).

    [N, C, H, W] -> [N, C, H, W] in the memory format of ``x``.
    """
    if norm.training or norm.running_mean is None or norm.running_var is None:
        return norm(x)
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    c = x.shape[1]
    return torch.addcmul(shift.view(1, c, 1, 1).to(x.dtype), x, scale.view(1, c, 1, 1).to(x.dtype))


def _check_indexes(indexes: Sequence[Sequence[int]], depth: int) -> tuple[tuple[int, int], ...]:
    if len(indexes) != 4 or any(len(r) != 2 for r in indexes):
        raise ValueError(f"interaction_indexes must be four [first, last] block ranges, got {list(indexes)}")
    ranges = tuple((int(r[0]), int(r[1])) for r in indexes)
    expected_first = 0
    for first, last in ranges:
        if first != expected_first or last < first:
            raise ValueError(
                f"interaction_indexes {list(ranges)} must be contiguous inclusive ranges starting at block 0"
            )
        expected_first = last + 1
    if expected_first > depth:
        raise ValueError(
            f"interaction_indexes {list(ranges)} reach block {expected_first - 1} of a {depth}-block ViT"
        )
    return ranges


def build_adapter_backbone(model_cfg: ModelConfig) -> ViTAdapter:
    """ViT (``model_cfg.vit``) wrapped in the adapter (``model_cfg.adapter``)."""
    a = model_cfg.adapter
    return ViTAdapter(
        vit=build_vit(model_cfg.vit),
        interaction_indexes=a.interaction_indexes,
        deform_num_heads=a.deform_num_heads,
        n_points=a.n_points,
        conv_inplane=a.conv_inplane,
        cffn_ratio=a.cffn_ratio,
        value_ratio=a.value_ratio,
        extra_extractors=a.extra_extractors,
        add_vit_feature=a.add_vit_feature,
        use_mrfp=a.use_mrfp,
        mrfp_ratio=a.mrfp_ratio,
        mrfp_extra_extractors=a.mrfp_extra_extractors,
        grad_checkpoint=a.grad_checkpoint,
    )
