"""Keypoint dynamics model of "Keypoints into the Future" (Manuelli et al. 2020), in torch.

An MLP predicts the next state from a history of ``H`` (default 2) states and actions, as a
**residual** on the current state, and is trained with a **multi-step open-loop rollout loss**
(the model is fed its own predictions for ``rollout_steps`` steps and every step's error
counts). The state is either

* a set of points, shape ``(N, P)`` with ``P`` in {2, 3} (metres, world frame): keypoints
  from any source — true keypoints (``info["keypoints"]``), S3K keypoints, descriptor
  keypoints — usually with the pusher / gripper position appended as one more row, or
* a flat vector ``(D,)``, e.g. a beta-VAE latent.

Conventions (all arrays float32 unless said):

=====================  =====================  ==============================================
name                   shape                  meaning
=====================  =====================  ==============================================
``states``             ``(B, H, *S)``         ``s_{t-H+1} .. s_t``, oldest first
``actions``            ``(B, H, A)``          ``a_{t-H+1} .. a_t``; ``a_t`` is applied at t
prediction             ``(B, *S)``            ``s_{t+1}``
episode ``states``     ``(T+1, *S)``          a recorded episode, ``T >= 1`` steps
episode ``actions``    ``(T, A)``             action ``t`` moves ``states[t]`` to ``[t+1]``
=====================  =====================  ==============================================

At the start of an episode the missing history is filled with copies of the first state and
zero actions (the same in training, :func:`make_windows`, and in the planner).

Options for point states: ``centre`` expresses every input point relative to the xy centroid
of the current state (the prediction is then invariant to planar translations by
construction); ``planar`` enables SE(2) augmentation during training (:func:`se2_transform`:
states and the action's planar velocity dimensions ``planar_action_dims`` are rotated about z
and translated together), for tasks whose physics is the same in every planar pose.

Checkpoints: one ``.pt`` file holding the state dict (CPU tensors) and the config as a JSON
string, read with ``torch.load(weights_only=True)`` (no pickled code) onto any device
(``KeypointDynamics.load(path, device=...)``).

Device: the model computes where its parameters are (``model.to(device)``, or
``TrainConfig(device=...)`` / ``KeypointDynamics.load(path, device=...)``);
:func:`train_dynamics` puts the training windows, batches and augmentation there and draws
the batch indices and augmentation parameters from a CPU generator, so a seed selects the
same batches on every device.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from s3k_envs.atomic import atomic_path
from s3k_envs.device import resolve_device

#: Version of the checkpoint layout written by :meth:`KeypointDynamics.save`.
CHECKPOINT_FORMAT = 1


@dataclass
class DynamicsConfig:
    """Architecture and state layout of a :class:`KeypointDynamics` model.

    Args:
        state_shape: ``(N, P)`` points (P = 2 or 3, m) or ``(D,)`` a flat latent vector.
        action_dim: A, number of action dimensions the model sees.
        history: H, number of past states and actions fed to the MLP (>= 1).
        hidden: widths of the MLP's hidden layers.
        planar: SE(2) augmentation in training (point states only).
        planar_action_dims: the two action dimensions that form a planar (x, y) vector in
            the world frame and rotate with the scene, or ``None`` if none do.
        centre: inputs relative to the current state's xy centroid (point states only).
    """

    state_shape: tuple[int, ...]
    action_dim: int
    history: int = 2
    hidden: tuple[int, ...] = (256, 256)
    planar: bool = False
    planar_action_dims: tuple[int, int] | None = (0, 1)
    centre: bool = True

    def __post_init__(self) -> None:
        self.state_shape = tuple(int(s) for s in self.state_shape)
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.planar_action_dims is not None:
            self.planar_action_dims = tuple(int(d) for d in self.planar_action_dims)
        s = self.state_shape
        if not (len(s) == 1 and s[0] >= 1) and not (len(s) == 2 and s[0] >= 1 and s[1] in (2, 3)):
            raise ValueError(f"state_shape: expected (N, P) points with P in {{2, 3}} or (D,) a "
                             f"latent vector, got {s}")
        if self.action_dim < 1:
            raise ValueError(f"action_dim: expected >= 1, got {self.action_dim}")
        if self.history < 1:
            raise ValueError(f"history: expected >= 1, got {self.history}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden: expected positive layer widths, got {self.hidden}")
        if self.planar and not self.is_points:
            raise ValueError("planar augmentation needs a point state (N, P), got a latent "
                             f"state {s}")
        pad = self.planar_action_dims
        if pad is not None and (len(pad) != 2 or len(set(pad)) != 2
                                or not all(0 <= d < self.action_dim for d in pad)):
            raise ValueError(f"planar_action_dims: expected two distinct action dimensions in "
                             f"[0, {self.action_dim}), got {pad}")

    @property
    def is_points(self) -> bool:
        """Whether the state is a point set ``(N, P)`` (else a flat vector)."""
        return len(self.state_shape) == 2

    @property
    def state_dim(self) -> int:
        """Number of numbers in one state."""
        return int(np.prod(self.state_shape))


@dataclass
class TrainConfig:
    """Training of :func:`train_dynamics`.

    Args:
        steps: optimizer steps (the run also stops after ``max_seconds`` of wall time).
        batch_size: windows per step.
        lr: Adam learning rate (cosine-decayed to 10 % over ``steps``).
        rollout_steps: L, open-loop steps of the rollout loss.
        augment: SE(2) augmentation; ``None``: the model's ``planar`` option.
        max_translation: largest augmentation translation per axis, m.
        val_fraction: share of the episodes held out for the validation error.
        seed: seed of the run's data split, batches and augmentation (the model's initial
            weights come from torch's global generator when it was built: seed it first).
        max_seconds: wall-clock budget, s (``None``: no limit).
        weight_decay: Adam weight decay.
        device: where to train: ``None`` keeps the model where it is; else ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``
            (:func:`s3k_envs.device.resolve_device`), and the model is moved there.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    rollout_steps: int = 4
    augment: bool | None = None
    max_translation: float = 0.1
    val_fraction: float = 0.1
    seed: int = 0
    max_seconds: float | None = None
    weight_decay: float = 0.0
    device: str | None = None


# ---------------------------------------------------------------------- SE(2) augmentation
def se2_transform(states: torch.Tensor, actions: torch.Tensor, theta: torch.Tensor,
                  translation: torch.Tensor,
                  planar_action_dims: tuple[int, int] | None = (0, 1)
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate point states about the world z axis by ``theta`` and translate them in xy; rotate
    the actions' planar velocity dimensions by the same angle (velocities do not translate).

    Args:
        states: ``(B, ..., N, P)`` points, P >= 2, m.
        actions: ``(B, ..., A)``.
        theta: ``(B,)`` rad (counter-clockwise about +z).
        translation: ``(B, 2)`` m, applied after the rotation.
        planar_action_dims: the two action dims forming a world-frame (x, y) vector, or None.

    Returns:
        Transformed ``(states, actions)``, same shapes (new tensors).
    """
    if states.shape[-1] < 2:
        raise ValueError(f"se2_transform: states need >= 2 coordinates, got {tuple(states.shape)}")
    b = states.shape[0]
    if theta.shape != (b,) or translation.shape != (b, 2):
        raise ValueError(f"se2_transform: expected theta ({b},) and translation ({b}, 2), got "
                         f"{tuple(theta.shape)} and {tuple(translation.shape)}")
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (B, 2, 2)
    sview = (b,) + (1,) * (states.dim() - 2) + (2, 2)
    xy = states[..., :2]
    new_xy = (rot.reshape(sview) @ xy.unsqueeze(-1)).squeeze(-1)
    new_xy = new_xy + translation.reshape((b,) + (1,) * (states.dim() - 2) + (2,))
    out_states = torch.cat([new_xy, states[..., 2:]], dim=-1)
    out_actions = actions.clone()
    if planar_action_dims is not None:
        i, j = planar_action_dims
        aview = (b,) + (1,) * (actions.dim() - 2)
        ax, ay = actions[..., i], actions[..., j]
        out_actions[..., i] = c.reshape(aview) * ax - s.reshape(aview) * ay
        out_actions[..., j] = s.reshape(aview) * ax + c.reshape(aview) * ay
    return out_states, out_actions


# ---------------------------------------------------------------------- model
class KeypointDynamics(nn.Module):
    """MLP dynamics ``s_{t+1} = s_t + scale * MLP(normalised history)`` (see module doc)."""

    def __init__(self, config: DynamicsConfig) -> None:
        super().__init__()
        self.config = config
        h, d, a = config.history, config.state_dim, config.action_dim
        n_in = h * d + h * a
        layers: list[nn.Module] = []
        width = n_in
        for w in config.hidden:
            layers += [nn.Linear(width, w), nn.SiLU()]
            width = w
        layers.append(nn.Linear(width, d))
        self.mlp = nn.Sequential(*layers)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))
        self.register_buffer("out_std", torch.ones(d))

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (where it computes)."""
        return self.in_mean.device

    # -------------------------------------------------------------- checks
    def check_states(self, states: torch.Tensor, lead: int, name: str = "states") -> None:
        """Raise ``ValueError`` unless ``states`` is ``(*lead dims, *state_shape)``."""
        s = tuple(self.config.state_shape)
        if states.dim() != lead + len(s) or tuple(states.shape[lead:]) != s:
            what = (f"(N={s[0]} points, P={s[1]} coordinates)" if self.config.is_points
                    else f"(D={s[0]},)")
            dims = ", ".join(map(str, s))
            raise ValueError(f"{name}: expected shape ({lead} leading dims, {dims}) — states "
                             f"{what} — got {tuple(states.shape)}")

    def check_actions(self, actions: torch.Tensor, lead: int, name: str = "actions") -> None:
        """Raise ``ValueError`` unless ``actions`` is ``(*lead dims, A)``."""
        if actions.dim() != lead + 1 or actions.shape[-1] != self.config.action_dim:
            raise ValueError(f"{name}: expected {lead} leading dims and action_dim="
                             f"{self.config.action_dim} last, got {tuple(actions.shape)}")

    # -------------------------------------------------------------- core
    def _features(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B, H, *S)``, ``(B, H, A)`` -> normalised ``(B, H*D + H*A)``."""
        b = states.shape[0]
        if self.config.is_points and self.config.centre:
            centroid = states[:, -1, :, :2].mean(dim=1)  # (B, 2)
            xy = states[..., :2] - centroid[:, None, None, :]
            states = torch.cat([xy, states[..., 2:]], dim=-1)
        x = torch.cat([states.reshape(b, -1), actions.reshape(b, -1)], dim=1)
        return (x - self.in_mean) / self.in_std

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Next state.

        Args:
            states: ``(B, H, *S)`` ``s_{t-H+1} .. s_t``.
            actions: ``(B, H, A)`` ``a_{t-H+1} .. a_t``.

        Returns:
            ``(B, *S)`` predicted ``s_{t+1}``.
        """
        h = self.config.history
        self.check_states(states, 2)
        self.check_actions(actions, 2)
        if states.shape[1] != h or actions.shape[1] != h or states.shape[0] != actions.shape[0]:
            raise ValueError(f"expected states (B, {h}, ...) and actions (B, {h}, A) with the "
                             f"same B, got {tuple(states.shape)} and {tuple(actions.shape)}")
        delta = self.mlp(self._features(states, actions)) * self.out_std
        return states[:, -1] + delta.reshape(states[:, -1].shape)

    def rollout(self, states: torch.Tensor, past_actions: torch.Tensor,
                actions: torch.Tensor) -> torch.Tensor:
        """Open-loop multi-step prediction, feeding the model its own predictions.

        Args:
            states: ``(B, H, *S)`` the last H observed states, oldest first.
            past_actions: ``(B, H-1, A)`` the actions applied between them.
            actions: ``(B, T, A)`` the actions to apply from now on.

        Returns:
            ``(B, T, *S)`` predicted states ``s_{t+1} .. s_{t+T}``.
        """
        h = self.config.history
        self.check_states(states, 2)
        self.check_actions(past_actions, 2, "past_actions")
        self.check_actions(actions, 2)
        b = states.shape[0]
        if states.shape[1] != h or past_actions.shape[1] != h - 1:
            raise ValueError(f"expected states (B, {h}, ...) and past_actions (B, {h - 1}, A), "
                             f"got {tuple(states.shape)} and {tuple(past_actions.shape)}")
        if past_actions.shape[0] != b or actions.shape[0] != b:
            raise ValueError(f"batch sizes differ: states {b}, past_actions "
                             f"{past_actions.shape[0]}, actions {actions.shape[0]}")
        s_hist, a_hist = states, past_actions
        out = []
        for t in range(actions.shape[1]):
            a_win = torch.cat([a_hist, actions[:, t : t + 1]], dim=1)
            nxt = self(s_hist, a_win)
            out.append(nxt)
            s_hist = torch.cat([s_hist[:, 1:], nxt[:, None]], dim=1)
            a_hist = a_win[:, 1:]
        return torch.stack(out, dim=1)

    # -------------------------------------------------------------- normaliser
    @torch.no_grad()
    def fit_normalizer(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        """Set input mean/std and output scale from windows ``(M, >=H+1, *S)``, ``(M, >=H, A)``
        (already augmented, if augmentation is used)."""
        h = self.config.history
        x = self._features_raw(states[:, :h], actions[:, :h])
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp_min(1e-4))
        delta = (states[:, h] - states[:, h - 1]).reshape(states.shape[0], -1)
        std = delta.std(0)
        if self.config.is_points:  # one scale per coordinate column, shared by all points
            n, p = self.config.state_shape
            col = std.reshape(n, p).pow(2).mean(0).sqrt()
            if self.config.planar:
                col[:2] = col[:2].pow(2).mean().sqrt()
            std = col.expand(n, p).reshape(-1)
        self.out_std.copy_(std.clamp_min(1e-5))

    def _features_raw(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        mean, std = self.in_mean.clone(), self.in_std.clone()
        self.in_mean.zero_()
        self.in_std.fill_(1.0)
        try:
            return self._features(states, actions)
        finally:
            self.in_mean.copy_(mean)
            self.in_std.copy_(std)

    # -------------------------------------------------------------- checkpoints
    def save(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the model (weights, normaliser, config as JSON) atomically to ``path``.

        ``extra``: JSON-serialisable metadata kept in the file (e.g. training statistics)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "kind": "KeypointDynamics",
            "config": json.dumps(asdict(self.config)),
            "extra": json.dumps(dict(extra or {})),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> KeypointDynamics:
        """Read a checkpoint written by :meth:`save` (``weights_only=True``) onto ``device``
        (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``), whichever device it
        was trained on."""
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"no dynamics checkpoint at {path}") from None
        if not isinstance(payload, dict) or payload.get("kind") != "KeypointDynamics":
            raise ValueError(f"{path}: not a KeypointDynamics checkpoint")
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: checkpoint format {payload.get('format')!r}, this code "
                             f"reads format {CHECKPOINT_FORMAT}")
        cfg = json.loads(payload["config"])
        if cfg.get("planar_action_dims") is not None:
            cfg["planar_action_dims"] = tuple(cfg["planar_action_dims"])
        model = cls(DynamicsConfig(**cfg))
        model.load_state_dict(payload["state_dict"])
        model.extra = json.loads(payload.get("extra", "{}"))
        model.to(resolve_device(device))
        return model


# ---------------------------------------------------------------------- data
def make_windows(episodes: Sequence[Mapping[str, np.ndarray]], history: int,
                 rollout_steps: int, state_shape: tuple[int, ...], action_dim: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut recorded episodes into training windows.

    Args:
        episodes: each ``{"states": (T+1, *S), "actions": (T, A')}`` with ``A' >= A`` (only
            the first ``action_dim`` action dimensions are kept).
        history: H. rollout_steps: L.

    Returns:
        ``states (M, H+L, *S)`` and ``actions (M, H+L-1, A)`` float32, where the first H
        states and H-1 actions are the history, actions ``[H-1:]`` the L applied ones and
        states ``[H:]`` the L targets. Missing history at an episode start is padded with the
        first state and zero actions. Episodes shorter than L are skipped.
    """
    s_out, a_out = [], []
    shape = tuple(state_shape)
    for i, ep in enumerate(episodes):
        st = np.asarray(ep["states"], dtype=np.float32)
        ac = np.asarray(ep["actions"], dtype=np.float32)
        if st.ndim < 1 or tuple(st.shape[1:]) != shape:
            raise ValueError(f"episode {i}: states should be (T+1, {', '.join(map(str, shape))}),"
                             f" got {st.shape}")
        if ac.ndim != 2 or ac.shape[0] != st.shape[0] - 1 or ac.shape[1] < action_dim:
            raise ValueError(f"episode {i}: actions should be (T={st.shape[0] - 1}, >= "
                             f"{action_dim}), got {ac.shape}")
        ac = ac[:, :action_dim]
        t = ac.shape[0]
        if t < rollout_steps:
            continue
        st = np.concatenate([np.repeat(st[:1], history - 1, axis=0), st])
        ac = np.concatenate([np.zeros((history - 1, action_dim), np.float32), ac])
        idx = np.arange(t - rollout_steps + 1)[:, None]
        s_out.append(st[idx + np.arange(history + rollout_steps)])
        a_out.append(ac[idx + np.arange(history + rollout_steps - 1)])
    if not s_out:
        raise ValueError(f"no episode has the {rollout_steps} steps a training window needs")
    return torch.from_numpy(np.concatenate(s_out)), torch.from_numpy(np.concatenate(a_out))


def _augment(model: KeypointDynamics, states: torch.Tensor, actions: torch.Tensor,
             max_translation: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    b = states.shape[0]  # parameters from the (CPU) generator, the transform on the device
    theta = ((torch.rand(b, generator=gen) * 2 - 1) * math.pi).to(states.device)
    trans = ((torch.rand(b, 2, generator=gen) * 2 - 1) * max_translation).to(states.device)
    return se2_transform(states, actions, theta, trans, model.config.planar_action_dims)


def rollout_loss(model: KeypointDynamics, states: torch.Tensor, actions: torch.Tensor
                 ) -> torch.Tensor:
    """Mean squared open-loop rollout error over all L steps, divided by the mean squared
    one-step change (so 1.0 = as bad as predicting no motion with zero-mean changes).

    ``states (B, H+L, *S)``, ``actions (B, H+L-1, A)`` from :func:`make_windows`."""
    h = model.config.history
    pred = model.rollout(states[:, :h], actions[:, : h - 1], actions[:, h - 1 :])
    err = (pred - states[:, h:]).pow(2).reshape(states.shape[0], pred.shape[1], -1)
    return err.mean() / model.out_std.pow(2).mean()


def train_dynamics(model: KeypointDynamics, episodes: Sequence[Mapping[str, np.ndarray]],
                   config: TrainConfig | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place on recorded episodes with the rollout loss, on
    ``config.device`` (None: where the model is; else the model is moved there first).

    Returns statistics: steps done, seconds, final train loss, validation rollout RMS error
    per step (in state units: m for point states) of the model and of a "no motion" baseline,
    and ``device`` (where it trained).
    """
    cfg = config or TrainConfig()
    mc = model.config
    if cfg.device is not None:
        model.to(resolve_device(cfg.device))
    device = model.device
    augment = mc.planar if cfg.augment is None else cfg.augment
    if augment and not mc.is_points:
        raise ValueError("SE(2) augmentation needs a point state")
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = rng.permutation(len(episodes))
    n_val = round(cfg.val_fraction * len(episodes)) if len(episodes) > 1 else 0
    val_eps = [episodes[i] for i in order[:n_val]]
    train_eps = [episodes[i] for i in order[n_val:]]
    args = (mc.history, cfg.rollout_steps, mc.state_shape, mc.action_dim)
    s_tr, a_tr = make_windows(train_eps, *args)
    s_tr, a_tr = s_tr.to(device), a_tr.to(device)
    if augment:
        s_fit, a_fit = _augment(model, s_tr, a_tr, cfg.max_translation, gen)
    else:
        s_fit, a_fit = s_tr, a_tr
    model.fit_normalizer(s_fit, a_fit)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(i, cfg.steps) / cfg.steps)))
    start = time.perf_counter()
    n = s_tr.shape[0]
    model.train()
    losses: list[float] = []
    step = 0
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen).to(device)
        s, a = s_tr[idx], a_tr[idx]
        if augment:
            s, a = _augment(model, s, a, cfg.max_translation, gen)
        loss = rollout_loss(model, s, a)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log is not None and (step % 500 == 0 or step == 1):
            log(f"step {step}: rollout loss {np.mean(losses[-100:]):.4f}")
        if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
            break
    model.eval()
    stats: dict[str, Any] = {
        "steps": step, "seconds": time.perf_counter() - start,
        "train_windows": int(n), "train_loss": float(np.mean(losses[-100:])),
        "device": str(device),
    }
    if val_eps:
        stats.update(evaluate_rollout(model, val_eps, cfg.rollout_steps))
    return stats


@torch.no_grad()
def evaluate_rollout(model: KeypointDynamics, episodes: Sequence[Mapping[str, np.ndarray]],
                     rollout_steps: int) -> dict[str, Any]:
    """Open-loop rollout RMS error per step on held-out episodes (state units, e.g. m), for
    the model and for the "nothing moves" baseline."""
    mc = model.config
    s, a = make_windows(episodes, mc.history, rollout_steps, mc.state_shape, mc.action_dim)
    s, a = s.to(model.device), a.to(model.device)
    h = mc.history
    pred = model.rollout(s[:, :h], a[:, : h - 1], a[:, h - 1 :])
    target = s[:, h:]
    still = s[:, h - 1 : h].expand_as(target)
    dims = tuple(range(2, target.dim()))
    if mc.is_points:  # RMS of the per-point Euclidean error
        def rms(x: torch.Tensor) -> list[float]:
            return x.pow(2).sum(-1).mean(dim=(0, *range(2, x.dim() - 1))).sqrt().tolist()
    else:
        def rms(x: torch.Tensor) -> list[float]:
            return x.pow(2).sum(dims).mean(0).sqrt().tolist()
    return {"val_windows": int(s.shape[0]), "val_rmse_per_step": rms(pred - target),
            "val_rmse_no_motion": rms(still - target)}
