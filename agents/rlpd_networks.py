"""The networks of :class:`agents.rlpd.RLPD`: running observation statistics, a batched
critic ensemble (``(E, in, out)`` weights, one kernel per layer for all members, optional
LayerNorm) and the tanh-squashed Gaussian actor.

Tensors are ``(B, D)`` batches (observations normalised, actions in ``[-1, 1]``); ensemble
outputs are ``(E, B)``.

Written for one CPU thread (``benchmarks/rl_throughput.py --updates-only``): at batch 256 and
256 x 256 layers an update round's matrix products take ~7 ms, the rest is element-wise
passes over ``(E, B, H)`` activations and per-op overhead; the Q head avoids ``bmm`` with a
size-1 axis (slow on CPUs), LayerNorm uses the kernel with an (identity) affine and one
``addcmul`` for the per-member scale and shift. ``tests/test_rlpd_update_reference.py``
checks the update against a plain re-implementation of the math.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 2.0
_OBS_CLIP = 10.0  # normalised observations are clipped to +-this many standard deviations


class RunningMeanStd(nn.Module):
    """Running mean and variance of ``(D,)`` vectors (parallel Welford / Chan et al.), as
    buffers so that they are saved with the agent. The statistics stay float64 on the CPU
    (updated from numpy); :meth:`normalize` runs on the device of its input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self._cache: tuple[Any, ...] | None = None  # see _float32

    def update(self, x: np.ndarray) -> None:
        """Fold in a batch ``(n, D)``."""
        x = np.asarray(x, np.float64).reshape(-1, self.mean.numel())
        n = len(x)
        if n == 0:
            return
        b_mean, b_var = x.mean(axis=0), x.var(axis=0)
        mean, var, count = self.mean.numpy(), self.var.numpy(), float(self.count)
        total = count + n
        delta = b_mean - mean
        new_mean = mean + delta * n / total
        m2 = var * count + b_var * n + delta ** 2 * count * n / total
        self.mean.copy_(torch.from_numpy(new_mean))
        self.var.copy_(torch.from_numpy(m2 / total))
        self.count.fill_(total)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``clip((x - mean) / sqrt(var + 1e-8), -10, 10)`` in float32, on ``x``'s device
        (``x`` ``(..., D)``)."""
        mean, std = self._float32(x.device)
        return torch.clamp((x - mean) / std, -_OBS_CLIP, _OBS_CLIP)

    def _float32(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 ``mean`` and ``sqrt(var + 1e-8)`` on ``device``, recomputed only when the
        statistics changed (their tensors' in-place version counters: :meth:`update`,
        ``load_state_dict``)."""
        c = self._cache
        if (c is None or c[0] is not self.mean or c[1] is not self.var
                or c[2] != (self.mean._version, self.var._version, device)):
            mean = self.mean.to(device=device, dtype=torch.float32)
            std = torch.sqrt(self.var + 1e-8).to(device=device, dtype=torch.float32)
            c = self._cache = (self.mean, self.var,
                               (self.mean._version, self.var._version, device), mean, std)
        return c[3], c[4]


# --------------------------------------------------------------------------- networks
class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied to ``(E, B, in)`` with one ``baddbmm``; each
    member initialised like :class:`torch.nn.Linear`."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features)
                                   .uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(E', B, in)`` -> ``(E', B, out)``; ``members`` ``(E',)`` picks the layers."""
        w, b = (self.weight, self.bias) if members is None else (self.weight[members],
                                                                 self.bias[members])
        if w.shape[-1] == 1:
            return _SingleOutputBaddbmm.apply(b, x, w)
        return torch.baddbmm(b, x, w)


class _SingleOutputBaddbmm(torch.autograd.Function):
    """``torch.baddbmm(b, x, w)`` for ``w`` ``(E, in, 1)`` (the Q head), computed as
    ``(b + w^T @ x^T)^T``. On a CPU ``bmm`` is slow when the product has a size-1 inner or
    last axis: ``(2, 256, 256) @ (2, 256, 1)`` takes 0.14 ms, ``(2, 1, 256) @ (2, 256, 256)``
    0.02 ms (1 thread); likewise autograd's input gradient ``g @ w^T``, an outer product with
    an inner size of 1, is replaced by a broadcast multiply (the same single products).
    Same values up to the order of the float sums (~1e-7 relative)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, b: torch.Tensor, x: torch.Tensor,
                w: torch.Tensor) -> torch.Tensor:
        """``b`` ``(E, 1, 1)``, ``x`` ``(E, B, in)``, ``w`` ``(E, in, 1)`` -> ``(E, B, 1)``."""
        ctx.save_for_backward(x, w)
        ctx.bias_shape = b.shape
        return torch.baddbmm(b, w.transpose(1, 2), x.transpose(1, 2)).transpose(1, 2)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
                 ) -> tuple[torch.Tensor | None, ...]:
        """Gradients of ``b``, ``x``, ``w`` from ``grad`` ``(E, B, 1)``."""
        x, w = ctx.saved_tensors
        need_b, need_x, need_w = ctx.needs_input_grad
        grad_b = grad.sum_to_size(ctx.bias_shape) if need_b else None
        grad_x = grad * w.transpose(1, 2) if need_x else None
        grad_w = torch.bmm(grad.transpose(1, 2), x).transpose(1, 2) if need_w else None
        return grad_b, grad_x, grad_w


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with per-member affine parameters ``(E, 1, H)``."""

    def __init__(self, members: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))
        # identity affine for F.layer_norm: its kernel with weight and bias is ~1.5x faster
        # on a CPU than without, same values; not saved (not part of the checkpoint)
        self.register_buffer("_one", torch.ones(features), persistent=False)
        self.register_buffer("_zero", torch.zeros(features), persistent=False)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(E', B, H)``; ``members`` as in :class:`EnsembleLinear`."""
        w, b = (self.weight, self.bias) if members is None else (self.weight[members],
                                                                 self.bias[members])
        return torch.addcmul(b, F.layer_norm(x, x.shape[-1:], self._one, self._zero), w)


class CriticEnsemble(nn.Module):
    """``E`` Q-functions ``Q_e(obs, action)``: MLPs with (optionally) LayerNorm + ReLU.

    Args:
        obs_dim, action_dim: D, A.
        hidden: hidden widths.
        members: E.
        layer_norm: LayerNorm after every hidden linear layer.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], members: int,
                 layer_norm: bool) -> None:
        super().__init__()
        self.members = members
        sizes = [obs_dim + action_dim, *hidden]
        self.linears = nn.ModuleList(EnsembleLinear(members, a, b)
                                     for a, b in itertools.pairwise(sizes))
        self.norms = nn.ModuleList(EnsembleLayerNorm(members, h) for h in hidden) \
            if layer_norm else None
        self.head = EnsembleLinear(members, sizes[-1], 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor,
                members: torch.Tensor | None = None) -> torch.Tensor:
        """``obs`` ``(B, D)``, ``action`` ``(B, A)`` -> ``(E', B)`` Q-values."""
        n = self.members if members is None else len(members)
        x = torch.cat([obs, action], dim=-1).unsqueeze(0).expand(n, -1, -1)
        for i, linear in enumerate(self.linears):
            x = linear(x, members)
            if self.norms is not None:
                x = self.norms[i](x, members)
            x = F.relu(x, inplace=True)  # x is this layer's own output: nothing else reads it
        return self.head(x, members).squeeze(-1)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy (SAC): ``obs (B, D)`` -> actions in ``[-1, 1]^A``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = obs_dim
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(size, 2 * action_dim)

    def forward(self, obs: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled (or mean) action ``(B, A)`` and its log-probability ``(B,)`` (with the tanh
        correction)."""
        mean, log_std = self.head(self.trunk(obs)).chunk(2, dim=-1)
        log_std = torch.clamp(log_std, _LOG_STD_MIN, _LOG_STD_MAX)
        std = log_std.exp()
        u = mean if deterministic else mean + std * torch.randn_like(mean)
        action = torch.tanh(u)
        logp = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2), numerically stable
        logp = logp - (2 * (math.log(2.0) - u - F.softplus(-2 * u))).sum(-1)
        return action, logp
