"""MPPI model-predictive control on a learned keypoint dynamics model ("Keypoints into the
Future", Manuelli et al. 2020: random shooting, then MPPI, terminal keypoint-distance cost,
replanning every control step).

Each control step :meth:`MPPIPlanner.act` (or the lower-level :meth:`MPPIPlanner.plan`):

1. warm start: the previous plan shifted by one step (its last action repeated); zeros on
   the first step;
2. **random shooting**: ``samples`` action sequences drawn uniformly within the bounds (held
   constant over ``shooting_hold`` steps, so that a sequence pushes somewhere), plus the warm
   start, are rolled out through the model in one batch; the MPPI-weighted mean of the
   sequences becomes the plan;
3. ``iterations`` **MPPI** refinements: ``samples`` sequences = plan + time-correlated
   Gaussian noise (std ``noise_std`` x half the action range), clipped to the bounds; the
   plan becomes their average weighted by ``softmax(-(c - c_min) / (temperature *
   (c_max - c_min)))`` (scale-free: ``temperature`` is a fraction of the cost spread);
4. the first action of the plan is returned; the rest warm-starts the next step.

Cost of a predicted sequence ``s_1..s_T`` (:meth:`MPPIPlanner.cost`): ``d(s_T)`` +
``running_cost`` x ``mean_t d(s_t)`` + ``action_cost`` x ``mean_t |a_t|^2`` (+ an optional
``reach_cost`` tie-breaker, see :class:`MPPIConfig`), where
``d(s)`` = mean over the goal keypoints of the Euclidean distance (m) between the state's
rows ``cost_rows`` and the goal ``(K, P)`` (point states), or the Euclidean distance to the
goal vector (latent states).

Planning time per control step is recorded in :attr:`MPPIPlanner.plan_seconds`.

Device: the planner samples, rolls out and scores on the model's device (where its
parameters are when the planner is built; move the model first, e.g.
``KeypointDynamics.load(path, device="cuda")``), with a random generator on that device;
states, goals and actions come in and go out as numpy arrays (or tensors on any device).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agents.dynamics import KeypointDynamics


@dataclass
class MPPIConfig:
    """Planner settings (see the module docstring).

    Args:
        horizon: T, planned steps.
        samples: sequences per iteration.
        iterations: MPPI iterations after the random-shooting one.
        noise_std: MPPI noise, fraction of half the action range.
        noise_correlation: AR(1) coefficient of the noise over time (0 = white).
        temperature: MPPI temperature as a fraction of the cost spread.
        shooting_hold: random-shooting sequences hold each action this many steps.
        running_cost: weight of the mean distance along the way (0 = terminal cost only).
        action_cost: weight of the mean squared action.
        reach_cost: weight of the mean distance (m) from the tool row to the centroid of the
            object rows (``reach_rows`` of the planner): a tie-breaker that brings the pusher
            to the object when no sampled sequence moves it yet (the temperature is relative
            to the cost spread, so even a tiny weight decides then); 0 = off (the paper).
        seed: seed of the planner's random generator.
    """

    horizon: int = 10
    samples: int = 256
    iterations: int = 3
    noise_std: float = 0.5
    noise_correlation: float = 0.5
    temperature: float = 0.1
    shooting_hold: int = 3
    running_cost: float = 0.1
    action_cost: float = 0.0
    reach_cost: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("horizon", "samples", "shooting_hold"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)!r}")
        if self.iterations < 0:
            raise ValueError(f"iterations: expected >= 0, got {self.iterations!r}")
        if not self.temperature > 0 or not self.noise_std > 0:
            raise ValueError("temperature and noise_std must be positive")
        if not 0 <= self.noise_correlation < 1:
            raise ValueError(f"noise_correlation: expected [0, 1), got {self.noise_correlation}")


class MPPIPlanner:
    """MPPI controller on a :class:`~agents.dynamics.KeypointDynamics` model.

    Args:
        model: the dynamics model (put in eval mode; its weights are not changed).
        low, high: ``(A,)`` action bounds (the model's action dimensions).
        config: :class:`MPPIConfig`.
        cost_rows: for point states, the state rows compared with the goal (e.g. the object
            keypoints, without the pusher row); ``None``: all rows.
        reach_rows: ``(tool_row, object_rows)`` for ``config.reach_cost`` (point states).

    The planner computes on ``model.device`` (:attr:`device`); ``config.seed`` seeds a
    generator there (on the CPU the same stream as before devices existed).
    """

    def __init__(self, model: KeypointDynamics, low: Sequence[float] | np.ndarray,
                 high: Sequence[float] | np.ndarray, config: MPPIConfig | None = None,
                 cost_rows: Sequence[int] | None = None,
                 reach_rows: tuple[int, Sequence[int]] | None = None) -> None:
        self.model = model.eval()
        self.config = config or MPPIConfig()
        #: Where the planner samples and rolls out: the model's device.
        self.device: torch.device = model.device
        mc = model.config
        a = mc.action_dim
        self.low = torch.as_tensor(np.asarray(low, dtype=np.float32), device=self.device)
        self.high = torch.as_tensor(np.asarray(high, dtype=np.float32), device=self.device)
        if self.low.shape != (a,) or self.high.shape != (a,) or not bool(
                torch.all(self.low < self.high)):
            raise ValueError(f"low, high: expected ({a},) bounds with low < high, got "
                             f"{tuple(self.low.shape)}, {tuple(self.high.shape)}")
        if cost_rows is not None:
            if not mc.is_points:
                raise ValueError("cost_rows applies to point states only")
            rows = [int(r) for r in cost_rows]
            if not rows or not all(0 <= r < mc.state_shape[0] for r in rows):
                raise ValueError(f"cost_rows: expected indices in [0, {mc.state_shape[0]}), "
                                 f"got {list(cost_rows)}")
            self.cost_rows: list[int] | None = rows
        else:
            self.cost_rows = None
        self.reach_rows: tuple[int, list[int]] | None = None
        if reach_rows is not None:
            n = mc.state_shape[0] if mc.is_points else 0
            tool, rows = int(reach_rows[0]), [int(r) for r in reach_rows[1]]
            if not mc.is_points or not rows or not all(0 <= r < n for r in [tool, *rows]):
                raise ValueError(f"reach_rows: expected (tool_row, object_rows) of a point state"
                                 f" with {n} rows, got {reach_rows!r}")
            self.reach_rows = (tool, rows)
        if self.config.reach_cost and self.reach_rows is None:
            raise ValueError("reach_cost needs reach_rows=(tool_row, object_rows)")
        self.gen = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.plan_seconds: list[float] = []
        self.reset()

    # -------------------------------------------------------------- goal / cost
    @property
    def goal_shape(self) -> tuple[int, ...]:
        """Shape a goal must have: ``(len(cost_rows), P)`` or the state shape."""
        s = self.model.config.state_shape
        if self.cost_rows is not None:
            return (len(self.cost_rows), s[1])
        return tuple(s)

    def _goal(self, goal: np.ndarray | torch.Tensor) -> torch.Tensor:
        g = _tensor(goal, self.device)
        if tuple(g.shape) != self.goal_shape:
            raise ValueError(f"goal: expected shape {self.goal_shape} (the goal keypoints"
                             f"{' of cost_rows ' + str(self.cost_rows) if self.cost_rows else ''}"
                             f"), got {tuple(g.shape)}")
        if not bool(torch.isfinite(g).all()):
            raise ValueError("goal: contains NaN or inf")
        return g

    def distance(self, states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Distance to the goal: ``(..., *S)`` -> ``(...)`` (mean keypoint distance, m, for
        point states; Euclidean distance for latent states)."""
        if self.model.config.is_points:
            pts = states if self.cost_rows is None else states[..., self.cost_rows, :]
            return (pts - goal).norm(dim=-1).mean(-1)
        return (states - goal).norm(dim=-1)

    def cost(self, pred: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor
             ) -> torch.Tensor:
        """``pred (N, T, *S)``, ``actions (N, T, A)`` -> ``(N,)`` cost (see module doc)."""
        d = self.distance(pred, goal)  # (N, T)
        c = d[:, -1]
        if self.config.running_cost:
            c = c + self.config.running_cost * d.mean(1)
        if self.config.reach_cost and self.reach_rows is not None:
            tool, rows = self.reach_rows
            centre = pred[..., rows, :].mean(-2)
            c = c + self.config.reach_cost * (pred[..., tool, :] - centre).norm(dim=-1).mean(1)
        if self.config.action_cost:
            c = c + self.config.action_cost * actions.pow(2).sum(-1).mean(1)
        return c

    # -------------------------------------------------------------- planning
    def reset(self) -> None:
        """Forget the plan and the state history (call at every episode start)."""
        a = self.model.config.action_dim
        self.plan_actions = torch.zeros(self.config.horizon, a, device=self.device).clamp(
            self.low, self.high)
        self._states: list[torch.Tensor] = []
        self._actions: list[torch.Tensor] = []

    def _weights(self, costs: torch.Tensor) -> torch.Tensor:
        spread = (costs.max() - costs.min()).clamp_min(1e-12)
        return torch.softmax(-(costs - costs.min()) / (self.config.temperature * spread), 0)

    def _evaluate(self, seqs: torch.Tensor, states: torch.Tensor, past: torch.Tensor,
                  goal: torch.Tensor) -> torch.Tensor:
        n = seqs.shape[0]
        pred = self.model.rollout(states.expand(n, *states.shape[1:]),
                                  past.expand(n, *past.shape[1:]), seqs)
        return self.cost(pred, seqs, goal)

    @torch.no_grad()
    def plan(self, states: np.ndarray | torch.Tensor, past_actions: np.ndarray | torch.Tensor,
             goal: np.ndarray | torch.Tensor) -> np.ndarray:
        """One control step of planning from an explicit history.

        Args:
            states: ``(H, *S)`` the last H states, oldest first (current last).
            past_actions: ``(H-1, A)`` the actions applied between them.
            goal: goal, shape :attr:`goal_shape`.

        Returns:
            ``(A,)`` float32 action to apply now (within the bounds). The whole plan is in
            :attr:`plan_actions` ``(T, A)``; :attr:`last_cost` is its predicted cost.
        """
        t0 = time.perf_counter()
        cfg, mc = self.config, self.model.config
        h, a_dim, horizon = mc.history, mc.action_dim, cfg.horizon
        g = self._goal(goal)
        s = _tensor(states, self.device)[None]
        p = _tensor(past_actions, self.device).reshape(1, -1, a_dim)
        self.model.check_states(s, 2)
        if s.shape[1] != h or p.shape[1] != h - 1:
            raise ValueError(f"expected {h} states and {h - 1} past actions, got "
                             f"{s.shape[1]} and {p.shape[1]}")
        low, high = self.low, self.high
        # warm start: shift the previous plan
        mean = torch.cat([self.plan_actions[1:], self.plan_actions[-1:]])
        # random shooting
        n_blocks = -(-horizon // cfg.shooting_hold)
        u = torch.rand(cfg.samples, n_blocks, a_dim, generator=self.gen, device=self.device)
        shoot = (low + u * (high - low)).repeat_interleave(cfg.shooting_hold, 1)[:, :horizon]
        seqs = torch.cat([mean[None], shoot])
        costs = self._evaluate(seqs, s, p, g)
        w = self._weights(costs)
        mean = (w[:, None, None] * seqs).sum(0)
        best_seq, best_cost = seqs[costs.argmin()], costs.min()
        scale = cfg.noise_std * (high - low) / 2
        rho = cfg.noise_correlation
        for _ in range(cfg.iterations):
            eps = torch.randn(cfg.samples, horizon, a_dim, generator=self.gen,
                              device=self.device)
            for t in range(1, horizon):
                eps[:, t] = rho * eps[:, t - 1] + (1 - rho**2) ** 0.5 * eps[:, t]
            seqs = torch.cat([mean[None], (mean + eps * scale).clamp(low, high)])
            costs = self._evaluate(seqs, s, p, g)
            if costs.min() < best_cost:
                best_seq, best_cost = seqs[costs.argmin()], costs.min()
            w = self._weights(costs)
            mean = (w[:, None, None] * seqs).sum(0)
        # the weighted mean is not evaluated by construction: keep the best if it is better
        final = self._evaluate(mean[None], s, p, g)[0]
        if final > best_cost:
            mean, final = best_seq, best_cost
        self.plan_actions = mean.clamp(low, high)
        self.last_cost = float(final)
        self.plan_seconds.append(time.perf_counter() - t0)
        return self.plan_actions[0].cpu().numpy().copy()

    def act(self, state: np.ndarray | torch.Tensor, goal: np.ndarray | torch.Tensor
            ) -> np.ndarray:
        """Plan from the current state, keeping the history internally (missing history at
        the episode start: copies of the first state and zero actions, as in training).

        Args:
            state: ``(*S)`` current state. goal: shape :attr:`goal_shape`.

        Returns:
            ``(A,)`` action to apply now.
        """
        mc = self.model.config
        st = _tensor(state, self.device)
        self.model.check_states(st, 0, "state")
        h = mc.history
        if not self._states:
            self._states = [st] * h
            self._actions = [torch.zeros(mc.action_dim, device=self.device)] * h
        else:
            self._states = [*self._states[1:], st]
        past = (torch.stack(self._actions[1:]) if h > 1
                else torch.zeros(0, mc.action_dim, device=self.device))
        action = self.plan(torch.stack(self._states), past, goal)
        self._actions = [*self._actions[1:], torch.as_tensor(action, device=self.device)]
        return action


def _tensor(x: np.ndarray | torch.Tensor | Sequence[float], device: torch.device
            ) -> torch.Tensor:
    """``x`` as a float32 tensor on ``device`` (numpy arrays, lists, tensors on any device)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
