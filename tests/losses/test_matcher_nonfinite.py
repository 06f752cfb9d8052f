"""A non-finite matching cost is the documented non-finite error, not scipy's ValueError."""

from __future__ import annotations

import pytest
import torch

from vidpan.losses.matcher import NonFiniteCostError, solve_assignment


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_cost_is_a_floating_point_error(bad: float) -> None:
    cost = torch.rand(4, 3)
    cost[1, 2] = bad
    with pytest.raises(NonFiniteCostError, match=r"1 non-finite entries of 12.*solver\.base_lr"):
        solve_assignment(cost)
    assert issubclass(NonFiniteCostError, FloatingPointError)


def test_finite_cost_still_matches() -> None:
    match = solve_assignment(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=torch.bfloat16))
    assert match.queries.tolist() == [0, 1] and match.targets.tolist() == [0, 1]
