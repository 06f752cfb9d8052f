"""Multi-layer perceptron with ReLU between layers (Mask2Former's ``MLP``).

Parameter names (``layers.{i}.weight``) follow Mask2Former / DVIS so checkpoints map 1:1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidpan.ops.linear import Linear


class MLP(nn.Module):
    """``num_layers`` Linear layers, ReLU after all but the last.

    Args:
        input_dim: width of the input.
        hidden_dim: width of every hidden layer.
        output_dim: width of the output.
        num_layers: number of Linear layers (>= 1).
    """

    def __init__(self, *, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError("MLP needs at least one layer")
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., input_dim] -> [..., output_dim]."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return x
