"""The cached pipeline stages before training: 1. expert demonstrations, 2. the beta-VAE
(frames, training, linear probe), 3. demonstrations converted to every arm's observations
and rewards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import s3k_envs  # noqa: F401  (registers the S3K envs)
from agents.beta_vae.model import BetaVAE
from agents.beta_vae.probe import linear_probe
from agents.beta_vae.training import train_vae
from agents.ddpgfd import DemoEpisode, episodes_from_recording, flatten_dict_observations
from benchmarks import common
from benchmarks.cable_rl.config import (
    CACHE_VERSION,
    FRAMES_SEED,
    IMAGE_SIZE,
    PROBE_SEED,
    CacheMismatchError,
    Config,
    arrays_sha256,
    file_sha256,
    json_normalise,
    log,
    read_json,
    stamp_diff,
)
from benchmarks.cable_rl.envs import (
    ArmEnv,
    make_arm_env,
)
from s3k_envs.atomic import atomic_open
from s3k_envs.demos import (
    FORMAT_VERSION,
    load_demonstrations,
    load_metadata,
    make_expert,
    run_episode,
    save_demonstrations,
)
from s3k_envs.keypoints.data import generate_dataset
from s3k_envs.keypoints.dataset import read_manifest
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.progress import Progress
from s3k_envs.wrappers.rewards import KeypointReward


# ---------------------------------------------------------------------------- 1. demos
class ContinueAfterSuccess(gym.Wrapper):
    """End an episode ``extra_steps`` control steps after the env first reports success.

    For recording demonstrations on an env made with ``terminate_on_success=False``: the
    ``kp`` and ``vae`` arms end an episode when the keypoint rule on the *predicted*
    keypoints succeeds, which can come a few steps after the true success (the shipped
    model's ``plug_tip`` is least accurate with the tip inside the socket), so the
    demonstrations go on a little past the true success and every arm's copy is cut where
    its own rule fires (:func:`relabel_episode`). ``extra_steps=0`` ends at the first true
    success, like the registered env.

    Args:
        env: the env (``info["is_success"]`` every step).
        extra_steps: control steps after the first success; the episode is then terminated.
    """

    def __init__(self, env: gym.Env, extra_steps: int) -> None:
        super().__init__(env)
        if extra_steps < 0:
            raise ValueError(f"extra_steps: expected >= 0, got {extra_steps}")
        self.extra_steps = int(extra_steps)
        self._since: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        """Reset (and forget the success)."""
        self._since = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step; terminated ``extra_steps`` steps after the first success."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._since is not None:
            self._since += 1
        elif info.get("is_success"):
            self._since = 0
        if self._since is not None and self._since >= self.extra_steps:
            terminated = True
        return obs, reward, terminated, truncated, info


def stage_demos(cfg: Config, work: Path) -> tuple[Path, dict[str, Any]]:
    """Record (or reuse) the expert demonstrations with images on the fixed rig.

    Episode ``i`` of the attempts is reset with seed ``demo_seed + i`` on
    the configured cable env (``cfg.env_id``) made with ``terminate_on_success=False`` inside
    :class:`ContinueAfterSuccess` (``demo_extra_steps``), run with
    :func:`s3k_envs.demos.run_episode` (the scripted expert of :func:`s3k_envs.experts.make_expert`)
    and kept when the env reported success at some step; written with
    :func:`s3k_envs.demos.save_demonstrations` (its format; the metadata records the extra
    steps).

    Returns:
        ``(path, metadata)`` of ``WORK/demos/cable.npz``.

    Raises:
        CacheMismatchError: a recording with other settings is there.
        RuntimeError: fewer than ``demos`` successes in ``3 * demos + 10`` attempts.
    """
    path = work / "demos" / "cable.npz"
    options = {"image_size": IMAGE_SIZE, "camera_seed": cfg.camera_seed,
               "terminate_on_success": False}
    want = json_normalise({"env_id": cfg.env_id, "episodes": cfg.demos, "seed": cfg.demo_seed,
                           "store_images": True, "env_options": options,
                           "extra_steps_after_success": cfg.demo_extra_steps})
    if path.exists():
        meta = load_metadata(path)
        diff = stamp_diff({k: meta.get(k) for k in want}, want)
        if diff:
            raise CacheMismatchError(f"{path}: recorded with other settings ({'; '.join(diff)});"
                                     " use another --work-dir or delete the file")
        log(f"demonstrations: reusing {path} ({meta['episodes']} episodes, "
            f"{meta['failures']} failed attempts)")
        return path, meta
    env = ContinueAfterSuccess(gym.make(cfg.env_id, **options), cfg.demo_extra_steps)
    kept: list[dict[str, Any]] = []
    failed: list[int] = []
    max_attempts = 3 * cfg.demos + 10
    try:
        expert = make_expert(env)
        with Progress(cfg.demos, "demonstrations", unit="ep", enabled=cfg.progress) as bar:
            attempt = 0
            while len(kept) < cfg.demos and attempt < max_attempts:
                seed = cfg.demo_seed + attempt
                attempt += 1
                episode = run_episode(env, expert, seed, store_images=True)
                if bool(np.any(episode["infos"]["is_success"])):
                    episode["success"] = True
                    kept.append(episode)
                    bar.update(1)
                else:
                    failed.append(seed)
                bar.set_postfix(failures=len(failed))
    finally:
        env.close()
    if len(kept) < cfg.demos:
        raise RuntimeError(f"only {len(kept)} of {cfg.demos} expert episodes succeeded in "
                           f"{max_attempts} attempts (failed seeds {failed[:20]})")
    meta = {**want, "format_version": FORMAT_VERSION, "keypoint_names": list(
        env.unwrapped.keypoint_names), "expert": type(expert).__name__, "attempts": attempt,
        "failures": len(failed), "failed_seeds": failed, "recorded_by": "benchmarks.cable_rl"}
    save_demonstrations(path, kept, meta)
    log(f"demonstrations: {len(kept)} episodes in {attempt} attempts -> {path}")
    return path, meta


# ---------------------------------------------------------------------------- 2. VAE
def stage_datasets(cfg: Config, work: Path) -> tuple[Path | None, Path]:
    """Generate (or reuse) the VAE's unlabelled frames and the probe's labelled samples,
    both on the fixed rig, along the expert's path (env made with
    ``terminate_on_success=False`` like the arms' envs, so the rollouts also cover the
    states after a true success).

    Returns:
        ``(frames_dir or None when a VAE checkpoint is given, probe_dir)``.
    """
    options = {"camera_seed": cfg.camera_seed, "terminate_on_success": False}
    common_kw: dict[str, Any] = {
        "image_size": IMAGE_SIZE, "env_options": options, "rollout_steps": cfg.rollout_steps,
        "rollout_noise": cfg.rollout_noise, "workers": cfg.workers, "progress": cfg.progress}
    frames = None
    try:
        if cfg.vae_checkpoint is None:
            frames = generate_dataset(work / "vae_frames", cfg.env_id, cfg.vae_frames, 0,
                                      seed=FRAMES_SEED, **common_kw)
        probe = generate_dataset(work / "probe_frames", cfg.env_id, cfg.probe_samples,
                                 cfg.probe_samples, seed=PROBE_SEED, **common_kw)
    except FileExistsError as e:
        raise CacheMismatchError(f"{e} (use another --work-dir)") from None
    return frames, probe


def vae_train_options(cfg: Config) -> dict[str, Any]:
    """Keyword arguments of :func:`agents.beta_vae.training.train_vae` for this configuration."""
    return {"minutes": cfg.vae_minutes, "clock": "cpu", "beta": 1.0, "batch": cfg.vae_batch,
            "seed": 0, "threads": cfg.threads, "image_size": cfg.vae_image_size,
            "steps": cfg.vae_steps, **cfg.vae_arch}


def stage_vae(cfg: Config, work: Path, frames: Path | None
              ) -> tuple[Path, dict[str, Any], bool]:
    """Train (or resume, or reuse) the beta-VAE, unless ``--vae-checkpoint`` is given.

    Returns:
        ``(checkpoint path, summary, reused)``: the summary of :func:`train_vae` (or of the
        given checkpoint); ``reused`` when nothing was trained.

    Raises:
        KeyboardInterrupt: training was interrupted (its state is saved; rerun to resume).
    """
    if cfg.vae_checkpoint is not None:
        return cfg.vae_checkpoint, {"given_checkpoint": str(cfg.vae_checkpoint)}, True
    assert frames is not None
    run = work / "vae"
    options = vae_train_options(cfg)
    want = json_normalise({"cache_version": CACHE_VERSION, "frames": str(frames),
                           "frames_params": _dataset_params(frames), "options": options})
    done = run / "done.json"
    if done.exists():
        old = read_json(done)
        if old.get("stamp") == want:
            log(f"beta-VAE: reusing {run / 'model.pt'} ({old['summary']['steps']} steps)")
            return run / "model.pt", old["summary"], True
        log(f"beta-VAE: settings changed ({'; '.join(stamp_diff(old.get('stamp', {}), want))})"
            "; resuming/continuing its training")
    summary = train_vae(frames, run, progress_bar=cfg.progress, **options)
    torch.set_num_threads(cfg.threads)
    if summary.get("interrupted"):
        raise KeyboardInterrupt(f"beta-VAE training interrupted at step {summary['steps']}; "
                                "rerun the same command to resume")
    keep = {k: summary[k] for k in ("steps", "elapsed_s", "clock", "steps_per_s", "num_frames",
                                    "final_eval_on", "final_eval", "files", "config",
                                    "model_config") if k in summary}
    common.write_json(done, {"stamp": want, "summary": keep})
    ev = summary["final_eval"]
    log(f"beta-VAE: {summary['steps']} steps in {summary['elapsed_s'] / 60:.1f} CPU-min; "
        f"{summary['final_eval_on']}: recon {ev['recon']:.0f} nats, KL {ev['kl']:.1f} nats, "
        f"{ev['active_units']}/{len(ev['kl_per_dim'])} active latents")
    return run / "model.pt", keep, False


def _dataset_params(root: Path) -> dict[str, Any]:
    m = read_manifest(root)
    keys = ("env_id", "env_options", "seed", "num_samples", "num_labelled", "rollout_steps",
            "rollout_noise")
    return {k: m.get(k) for k in keys}


def stage_probe(cfg: Config, work: Path, vae_path: Path, probe_dir: Path
                ) -> tuple[dict[str, Any], bool]:
    """Linear probe latent -> true keypoints (mm) and the keypoint model's error on the same
    test samples (cached in ``WORK/probe.json``).

    Returns:
        ``(result of linear_probe, reused from the cache)``.
    """
    path = work / "probe.json"
    want = json_normalise({"cache_version": CACHE_VERSION, "vae_sha256": file_sha256(vae_path),
                           "keypoint_checkpoint_sha256": file_sha256(cfg.keypoint_checkpoint),
                           "probe": _dataset_params(probe_dir)})
    if path.exists():
        old = read_json(path)
        if old.get("stamp") == want:
            return old["result"], True
    # Paths relative to the repository that ran it (a run from a git worktree would otherwise
    # leave the worktree's absolute path in the committed results).
    result = common.repo_relative(linear_probe(vae_path, probe_dir, test_fraction=0.3, seed=0,
                                               keypoint_model=cfg.keypoint_checkpoint))
    common.write_json(path, {"stamp": want, "result": result})
    kp = result["keypoint_model"]
    log(f"linear probe on {result['num_test']} test samples: VAE latent -> keypoints median "
        f"{result['test']['median']:.1f} mm (p90 {result['test']['p90']:.1f}); S3K model median "
        f"{kp['median']:.1f} mm (p90 {kp['p90']:.1f}); mean-position baseline "
        f"{result['mean_baseline']['median']:.1f} mm")
    return result, False


# ---------------------------------------------------------------------------- 3. conversion
def in_safety_box(gripper_pos: np.ndarray, socket: np.ndarray,
                  box: Sequence[Sequence[float]]) -> bool:
    """The env's safety-box test (:meth:`CableInsertEnv.gripper_in_safety_box`) from a
    recorded gripper position ``(3,)`` m and the socket keypoint ``(3,)`` m (its xy is the
    socket's; the box's heights are absolute)."""
    (dx, dy), (zmin, zmax) = box
    p = np.asarray(gripper_pos, dtype=np.float64)
    s = np.asarray(socket, dtype=np.float64)
    return bool(abs(p[0] - s[0]) <= dx and abs(p[1] - s[1]) <= dy and zmin <= p[2] <= zmax)


def relabel_episode(episode: Mapping[str, Any], keypoints: np.ndarray,
                    recorded: Mapping[str, Any], reward: KeypointReward,
                    safety_box: Sequence[Sequence[float]]) -> tuple[dict[str, Any], str]:
    """Give a converted demonstration the arm's own rewards and episode end.

    Step ``t`` (action ``t``, reaching observation ``t + 1``) gets the reward the arm's
    :class:`KeypointReward` would give: ``-scale * (D(k_{t+1}) + penalty * left_{t+1})``
    with ``D`` its keypoint distance on ``keypoints[t + 1]`` and ``left`` the recomputed
    safety-box flag. The episode is cut at the first step where the keypoint rule succeeds
    or the gripper left the safety box (terminated there, as the arm's env ends it); if
    neither happens the last step is marked truncated.

    Args:
        episode: the converted episode (``observations`` dict of ``(T+1, ...)``, ``actions``
            ``(T, 6)``, ...).
        keypoints: ``(T+1, K, 3)`` m, the keypoints the arm's reward reads at every
            recorded observation.
        recorded: the recorded episode (``observations["gripper_pos"]`` ``(T+1, 3)`` m,
            ``infos["keypoints"]`` ``(T+1, K, 3)`` m, ``terminated``).
        reward: the arm's reward wrapper.
        safety_box: the env's ``safety_box`` option.

    Returns:
        ``(episode, outcome)``: the relabelled episode (``T' <= T`` steps) and ``"rule"``
        (the keypoint rule fired: terminated there), ``"never"`` (it never fired: the last
        recorded step is marked truncated) or ``"left_box"`` (terminated there).

    Raises:
        ValueError: non-finite keypoints, or a penalty the cable reward does not define.
    """
    t_steps = len(episode["actions"])
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[0] != t_steps + 1 or not np.all(np.isfinite(kp)):
        raise ValueError(f"keypoints: expected finite (T+1={t_steps + 1}, K, 3), got "
                         f"{kp.shape} (finite: {bool(np.all(np.isfinite(kp)))})")
    unknown = sorted(set(reward.penalties) - {"left_safety_box"})
    if unknown:
        raise ValueError(f"relabel_episode: cannot recompute penalties {unknown}")
    names = list(reward.keypoint_names)
    socket = np.asarray(recorded["infos"]["keypoints"], np.float64)[:, names.index("socket")]
    grip = np.asarray(recorded["observations"]["gripper_pos"], np.float64)
    rewards = np.empty(t_steps)
    end, outcome = t_steps - 1, "never"
    for t in range(t_steps):
        dist = reward.keypoint_distance(kp[t + 1])
        left = not in_safety_box(grip[t + 1], socket[t + 1], safety_box)
        assert reward.success_threshold is not None
        success = dist < reward.success_threshold
        # exactly what the reward wrapper returns for this step (shaping, bonus, penalties)
        rewards[t] = reward.reward_for(dist, success, {"left_safety_box": left})
        if success:
            end, outcome = t, "rule"
            break
        if left:
            end, outcome = t, "left_box"
            break
    n = end + 1
    terminated = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    if outcome == "never":
        truncated[-1] = True
    else:
        terminated[-1] = True
    obs = episode["observations"]
    out = {"observations": {k: np.asarray(v)[:n + 1] for k, v in obs.items()},
           "actions": np.asarray(episode["actions"])[:n], "rewards": rewards[:n],
           "terminated": terminated, "truncated": truncated}
    return out, outcome


def convert_demos(arm: str, arm_env: ArmEnv, recorded: list[dict[str, Any]]
                  ) -> tuple[list[DemoEpisode], dict[str, Any]]:
    """Convert the recorded demonstrations for one arm.

    Observations through the arm's own wrappers (:func:`episodes_from_recording` with
    :meth:`ArmEnv.observation_fn`), rewards and episode ends from the arm's reward
    (:func:`relabel_episode`), flattened with :func:`flatten_dict_observations`.

    Returns:
        ``(flat episodes, stats)``: the :class:`DemoEpisode` list (``observations``
        ``(T+1, D)`` float32) and counts: episodes, steps, outcomes, mean return, the
        keypoints' error against the truth (mm, ``kp``/``vae``) and, for ``gt``, the largest
        difference between the recomputed and the recorded rewards.
    """
    collected: list[np.ndarray] = []
    converted = episodes_from_recording(recorded, observation_fn=arm_env.observation_fn(collected),
                                        num_episodes=None)
    box = arm_env.env.unwrapped.options["safety_box"]
    episodes, outcomes = [], {"rule": 0, "never": 0, "left_box": 0}
    start, errors, reward_diff, lags = 0, [], 0.0, []
    for conv, rec in zip(converted, recorded, strict=True):
        n_obs = len(rec["actions"]) + 1
        kp = np.stack(collected[start:start + n_obs])
        start += n_obs
        errors.append(np.linalg.norm(kp - np.asarray(rec["infos"]["keypoints"]), axis=-1))
        episode, outcome = relabel_episode(conv, kp, rec, arm_env.reward, box)
        outcomes[outcome] += 1
        true_success = np.flatnonzero(np.asarray(rec["infos"]["is_success"])[1:])
        if outcome == "rule" and true_success.size:
            lags.append(len(episode["actions"]) - 1 - int(true_success[0]))
        if arm == "gt":
            n = len(episode["rewards"])
            reward_diff = max(reward_diff, float(np.abs(
                episode["rewards"] - np.asarray(rec["rewards"][:n])).max()))
        episodes.append(episode)
    if start != len(collected):
        raise RuntimeError(f"demo conversion: {len(collected)} observations converted, "
                           f"{start} expected")
    _, flat = flatten_dict_observations(arm_env.env, episodes)
    assert flat is not None
    err_mm = 1000.0 * np.concatenate([e.ravel() for e in errors])
    stats: dict[str, Any] = {
        "episodes": len(flat), "steps": int(sum(len(e["actions"]) for e in flat)),
        "recorded_steps": int(sum(len(e["actions"]) for e in recorded)),
        "outcomes": outcomes,
        "rule_steps_after_true_success": (
            {"mean": float(np.mean(lags)), "min": int(min(lags)), "max": int(max(lags))}
            if lags else None),
        "mean_return": float(np.mean([np.sum(e["rewards"]) for e in flat])),
        "keypoint_error_mm": {"median": float(np.median(err_mm)),
                              "p90": float(np.percentile(err_mm, 90)),
                              "max": float(err_mm.max())},
    }
    if arm == "gt":
        stats["max_abs_reward_diff_vs_recorded"] = reward_diff
    return flat, stats


def save_episodes(path: Path, episodes: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
                  ) -> str:
    """Write flat demonstration episodes atomically to an ``.npz``; returns their content
    hash (:func:`arrays_sha256`), also stored in the file's metadata."""
    lengths = np.array([len(e["actions"]) for e in episodes], dtype=np.int64)
    arrays = {
        "observations": np.concatenate([e["observations"] for e in episodes]),
        "actions": np.concatenate([e["actions"] for e in episodes]),
        "rewards": np.concatenate([e["rewards"] for e in episodes]),
        "terminated": np.concatenate([e["terminated"] for e in episodes]),
        "truncated": np.concatenate([e["truncated"] for e in episodes]),
        "lengths": lengths,
    }
    digest = arrays_sha256(arrays)
    text = json.dumps({**meta, "content_sha256": digest}, default=common._json_default)
    with atomic_open(path, "wb") as f:
        np.savez(f, metadata=np.array(text), **arrays)
    return digest


def load_episodes(path: Path) -> tuple[list[DemoEpisode], dict[str, Any]]:
    """Read episodes written by :func:`save_episodes`; returns ``(episodes, metadata)``."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        arrays = {k: data[k] for k in data.files if k != "metadata"}
    lengths = arrays["lengths"]
    episodes: list[DemoEpisode] = []
    s = o = 0
    for n in lengths:
        n = int(n)
        episodes.append(DemoEpisode(
            observations=arrays["observations"][o:o + n + 1], actions=arrays["actions"][s:s + n],
            rewards=arrays["rewards"][s:s + n], terminated=arrays["terminated"][s:s + n],
            truncated=arrays["truncated"][s:s + n]))
        s, o = s + n, o + n + 1
    return episodes, meta


def stage_convert(cfg: Config, work: Path, demo_path: Path, predictor: KeypointPredictor,
                  vae: BetaVAE | None, vae_sha: str | None) -> dict[str, dict[str, Any]]:
    """Convert (or reuse) the demonstrations of every arm (``WORK/demos/<arm>.npz``).

    Returns:
        ``{arm: {"path", "content_sha256", "stats", "reused"}}``.
    """
    demo_sha = file_sha256(demo_path)
    kp_sha = file_sha256(cfg.keypoint_checkpoint)
    recorded: list[dict[str, Any]] | None = None
    out: dict[str, dict[str, Any]] = {}
    for arm in cfg.arms:
        path = work / "demos" / f"{arm}.npz"
        want = json_normalise({
            "cache_version": CACHE_VERSION, "arm": arm, "demos_sha256": demo_sha,
            "keypoint_checkpoint_sha256": kp_sha if arm != "gt" else None,
            "vae_sha256": vae_sha if arm == "vae" else None, "camera_seed": cfg.camera_seed})
        if path.exists():
            _, meta = load_episodes(path)
            if meta.get("stamp") == want:
                out[arm] = {"path": str(path), "content_sha256": meta["content_sha256"],
                            "stats": meta["stats"], "reused": True}
                continue
            log(f"demos for {arm}: inputs changed, converting again")
        if recorded is None:
            recorded = load_demonstrations(demo_path)
        arm_env = make_arm_env(arm, cfg.camera_seed, predictor, vae, cfg.env_id)
        try:
            t0 = time.monotonic()
            episodes, stats = convert_demos(arm, arm_env, recorded)
            stats["seconds"] = time.monotonic() - t0
        finally:
            arm_env.env.close()
        digest = save_episodes(path, episodes, {"stamp": want, "stats": stats})
        out[arm] = {"path": str(path), "content_sha256": digest, "stats": stats,
                    "reused": False}
        o, lag = stats["outcomes"], stats["rule_steps_after_true_success"]
        lag_text = f" ({lag['mean']:.1f} steps after the true success)" if lag else ""
        log(f"demos for {arm}: {stats['episodes']} episodes, {stats['steps']} steps (recorded "
            f"{stats['recorded_steps']}); its keypoint rule fired in {o['rule']}{lag_text}, "
            f"never in {o['never']}; keypoint error median "
            f"{stats['keypoint_error_mm']['median']:.1f} mm; mean return "
            f"{stats['mean_return']:.2f}")
    return out
