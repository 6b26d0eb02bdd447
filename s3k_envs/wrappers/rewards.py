"""KeypointReward: reward and success from distances between 3D keypoints.

A reward is a weighted sum of :class:`KeypointTerm` distances, each between a keypoint and
another keypoint (or a fixed world point), shifted by an offset:

>>> env = KeypointObservation(gym.make("S3K-CableInsert-v0"), ckpt)   # predicted keypoints
>>> env = KeypointReward(env, [KeypointTerm("plug_tip", "socket"),
...                            KeypointTerm("plug_base", "socket", offset=(0, 0, 0.01))],
...                      success_threshold=0.025)
>>> env = KeypointReward.cable_insert(env)        # the same rule, with the env's constants
>>> KeypointTerm("corner_0", obs_key="gripper_pos")  # keypoint to the gripper (Box, Shoes)

Keypoints come from the S3K model (``info["predicted_keypoints"]``) when a
:class:`~s3k_envs.wrappers.keypoints.KeypointObservation` is below this wrapper, and from the
env's ground truth (``info["keypoints"]``) otherwise, so the same rule can be evaluated on
predictions (what an agent without privileged state gets) and on ground truth (what the env
measures).

Confidence gate (``min_confidence``): on predicted keypoints a success rule can fire on a
frame where the model does not see the object at all (two diffuse heatmaps can triangulate
anywhere, e.g. a false "inserted" with the plug 47 cm from the socket, issue 15). With
``min_confidence > 0`` success needs the fused confidence (:func:`fused_confidence`, the mean
over cameras of the Appendix-B weights, what ``obs["keypoint_confidence"]`` holds) of every
gated keypoint (default: the ``a`` keypoints of the terms, e.g. ``plug_tip`` and
``plug_base``) to be at least ``min_confidence``; the per-step shaped reward is paid either
way, only the success (its bonus and termination) is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Default ``min_confidence`` of :meth:`KeypointReward.cable_insert`: the fused confidence of
#: ``plug_tip`` and ``plug_base`` must be at least this for the keypoint rule to succeed.
#: Chosen from ``benchmarks/results/cable_socket_keypoints.json`` (issue 15): every false
#: "inserted" frame found (45-60 cm from the socket, the gripper high in a corner of the safety
#: box) has the plug out of every view (gate confidence 0.047, the floor of the Appendix-B
#: weights); true successes score >= 0.75 with the shipped model (>= 0.33 with the previous
#: one); a plug seen well in only one of the 4 views scores about 0.27.
CABLE_MIN_CONFIDENCE = 0.2


def _vec3(value: Any, name: str) -> tuple[float, float, float]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected 3 numbers (m), got {value!r}") from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected 3 finite numbers (m), got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class KeypointTerm:
    """One distance of a keypoint reward: ``weight * |p(a) - (q + offset)|`` in metres.

    ``p(a)`` is keypoint ``a``; ``q`` is keypoint ``b``, the fixed world point ``target``, or
    the ``(3,)`` observation ``obs[obs_key]`` (e.g. ``"gripper_pos"``); give exactly one.

    Attributes:
        a: keypoint name.
        b: another keypoint name, or None.
        target: ``(3,)`` fixed world point, m, or None.
        offset: ``(3,)`` m added to ``q`` (world frame), default 0.
        weight: >= 0, multiplies this term's distance in the sum.
        obs_key: name of a ``(3,)`` observation entry in m (world frame), or None.
    """

    a: str
    b: str | None = None
    target: tuple[float, float, float] | None = None
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    weight: float = 1.0
    obs_key: str | None = None

    def __post_init__(self) -> None:
        if not all(isinstance(v, str) or (v is None and name != "a")
                   for name, v in (("a", self.a), ("b", self.b), ("obs_key", self.obs_key))):
            raise ValueError(f"KeypointTerm: a, b and obs_key must be names (str), got "
                             f"a={self.a!r}, b={self.b!r}, obs_key={self.obs_key!r}")
        given = [v is not None for v in (self.b, self.target, self.obs_key)]
        if sum(given) != 1:
            raise ValueError(f"KeypointTerm({self.a!r}): give exactly one of b (a keypoint "
                             f"name), target (a (3,) world point) and obs_key (a (3,) "
                             f"observation), got b={self.b!r}, target={self.target!r}, "
                             f"obs_key={self.obs_key!r}")
        if self.target is not None:
            object.__setattr__(self, "target", _vec3(self.target, f"KeypointTerm({self.a!r}) "
                                                                  "target"))
        object.__setattr__(self, "offset", _vec3(self.offset, f"KeypointTerm({self.a!r}) offset"))
        weight = float(self.weight)
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"KeypointTerm({self.a!r}): weight must be finite and >= 0, got "
                             f"{self.weight!r}")
        object.__setattr__(self, "weight", weight)


def fused_confidence(confidence: np.ndarray) -> np.ndarray:
    """Per-keypoint confidence of a multi-view prediction: the mean over cameras.

    Args:
        confidence: ``(C, K)`` (or ``(..., C, K)``) per-camera Appendix-B weights in [0, 1]
            (``info["predicted_confidence"]`` of a
            :class:`~s3k_envs.wrappers.keypoints.KeypointObservation`); NaN counts as 0.

    Returns:
        ``(K,)`` (or ``(..., K)``) float64 in [0, 1], the same numbers as
        ``obs["keypoint_confidence"]``.

    Raises:
        ValueError: fewer than 2 dimensions.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.ndim < 2:
        raise ValueError(f"confidence: expected (C, K) per-camera weights, got shape "
                         f"{conf.shape}")
    return np.clip(np.nan_to_num(conf, nan=0.0).mean(axis=-2), 0.0, 1.0)


def _find_keypoint_observation(env: gym.Env) -> gym.Env | None:
    from s3k_envs.wrappers.keypoints import KeypointObservation

    current: Any = env
    while current is not None:
        if isinstance(current, KeypointObservation):
            return current
        if current is current.unwrapped:
            return None
        current = getattr(current, "env", None)
    return None


class KeypointReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replace an env's reward (and optionally success) by a weighted keypoint distance.

    With terms ``i`` the distance is

        ``D = sum_i weight_i * |p(a_i) - (q_i + offset_i)|``  (m),

    where ``p(a_i)`` is keypoint ``a_i`` and ``q_i`` is keypoint ``b_i``, the fixed point
    ``target_i`` or the observation entry ``obs[obs_key_i]``; the reward is

        ``scale * (f(D) + success_bonus * success - P)``

    with ``f(D) = -D`` (``shaping="negative"``, the default) or ``f(D) = 1 - tanh(D /
    length)`` in ``[0, 1]`` (``shaping="tanh"``), and ``P`` the sum of the ``penalties`` whose
    info flag is set on this step. Prefer ``"tanh"`` (with a success bonus) whenever an
    episode can end early for reasons other than success (leaving a workspace, an unstable
    simulation): with a negative reward every step, ending the episode stops the losses, and
    agents learn to end it (issue 15, ``S3K-CableInsert-v0``); with a non-negative one every
    early end forfeits reward. ``"negative"`` is fine when only success ends episodes.

    Args:
        env: the env; its info must carry ``keypoints (K, 3)`` (every S3K env) or, with a
            :class:`~s3k_envs.wrappers.keypoints.KeypointObservation` below this wrapper,
            ``predicted_keypoints (K, 3)``.
        terms: the :class:`KeypointTerm` s (at least one); terms with ``obs_key`` read that
            ``(3,)`` entry of the observation this wrapper receives.
        success_threshold: success when ``D < success_threshold`` (m).
        success: or a callable ``success(keypoints) -> bool`` on the ``(K, 3)`` keypoints
            (m, float64, in the order of the source's names). Give at most one of the two;
            with neither, ``info["is_success"]`` is left as the env set it.
        terminate_on_success: also end the episode when the keypoint rule succeeds (the
            env's own termination rules still apply: make the env with
            ``terminate_on_success=False`` to let only this rule end episodes).
        scale: reward multiplier.
        penalties: ``{info key: amount}``: subtract ``amount`` (in units of ``f(D)``: m for
            ``"negative"``) on steps where ``info[key]`` is true (e.g.
            ``{"left_safety_box": 10.0}``).
        keypoint_source: ``"auto"`` (predicted when a KeypointObservation is below, else
            true), ``"predicted"`` or ``"true"`` (ground truth even under a
            KeypointObservation: a privileged reward).
        shaping: ``"negative"`` (``f(D) = -D``) or ``"tanh"`` (``f(D) = 1 - tanh(D /
            length)``).
        length: m, the length scale of ``"tanh"`` (required for it, > 0).
        success_bonus: added (before ``scale``) on steps where the success rule holds
            (>= 0; needs a success rule when > 0).
        min_confidence: in [0, 1]; with predicted keypoints, success also needs the
            :func:`fused_confidence` of every ``confidence_keypoints`` entry to be at least
            this (0: no gate). Ground-truth keypoints are never gated. The shaped per-step
            reward does not depend on it.
        confidence_keypoints: names of the gated keypoints; default the ``a`` keypoints of
            the terms (the moving ones, e.g. ``plug_tip`` and ``plug_base``).

    Info (reset and step): ``keypoint_distance`` (D, m), ``keypoint_distances`` ``(T,)``
    per-term unweighted distances (m); with a success rule, ``is_success`` (the rule) and
    ``is_success_true`` (the env's own ``is_success``, when it reported one); with the gate
    on predicted keypoints, ``keypoint_gate_confidence`` (the smallest fused confidence of
    the gated keypoints) and ``success_refused`` (the distance rule held but the gate refused).

    Raises:
        ValueError: no terms, unknown keypoint names (the message lists the known ones), both
            or (with ``terminate_on_success``, a ``success_bonus`` or a ``min_confidence``)
            neither success rule, unknown ``shaping``, bad numbers.
    """

    def __init__(
        self,
        env: gym.Env,
        terms: Sequence[KeypointTerm],
        success_threshold: float | None = None,
        success: Callable[[np.ndarray], bool] | None = None,
        terminate_on_success: bool = False,
        scale: float = 1.0,
        penalties: Mapping[str, float] | None = None,
        keypoint_source: str = "auto",
        shaping: str = "negative",
        length: float | None = None,
        success_bonus: float = 0.0,
        min_confidence: float = 0.0,
        confidence_keypoints: Sequence[str] | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, _disable_deepcopy=True, terms=list(terms), success_threshold=success_threshold,
            success=success, terminate_on_success=terminate_on_success, scale=scale,
            penalties=None if penalties is None else dict(penalties),
            keypoint_source=keypoint_source, shaping=shaping, length=length,
            success_bonus=success_bonus, min_confidence=min_confidence,
            confidence_keypoints=None if confidence_keypoints is None
            else list(confidence_keypoints))
        gym.Wrapper.__init__(self, env)
        self.terms: tuple[KeypointTerm, ...] = tuple(terms)
        if not self.terms or not all(isinstance(t, KeypointTerm) for t in self.terms):
            raise ValueError(f"terms: expected a non-empty sequence of KeypointTerm, got {terms!r}")
        if success_threshold is not None and success is not None:
            raise ValueError("give success_threshold or success, not both")
        if success_threshold is not None and not (
                math.isfinite(float(success_threshold)) and float(success_threshold) > 0):
            raise ValueError(f"success_threshold: expected a positive distance in m, got "
                             f"{success_threshold!r}")
        if success is not None and not callable(success):
            raise ValueError(f"success: expected a callable keypoints (K, 3) -> bool, got "
                             f"{success!r}")
        if terminate_on_success and success_threshold is None and success is None:
            raise ValueError("terminate_on_success needs a success rule: give success_threshold "
                             "or success")
        if not math.isfinite(float(scale)):
            raise ValueError(f"scale: expected a finite number, got {scale!r}")
        self.success_threshold = None if success_threshold is None else float(success_threshold)
        self.success_fn = success
        self.terminate_on_success = bool(terminate_on_success)
        self.scale = float(scale)
        self.penalties: dict[str, float] = {str(k): float(v) for k, v in (penalties or {}).items()}
        bad = {k: v for k, v in self.penalties.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"penalties: expected finite amounts, got {bad}")
        if shaping not in ("negative", "tanh"):
            raise ValueError(f"shaping: expected 'negative' or 'tanh', got {shaping!r}")
        if shaping == "tanh" and (length is None or not (math.isfinite(float(length))
                                                         and float(length) > 0)):
            raise ValueError(f"length: shaping='tanh' needs a positive length scale in m, got "
                             f"{length!r}")
        if not (math.isfinite(float(success_bonus)) and float(success_bonus) >= 0):
            raise ValueError(f"success_bonus: expected a finite number >= 0, got "
                             f"{success_bonus!r}")
        if success_bonus and success_threshold is None and success is None:
            raise ValueError("success_bonus needs a success rule: give success_threshold or "
                             "success")
        try:
            min_conf = float(min_confidence)
        except (TypeError, ValueError):
            min_conf = math.nan
        if not 0.0 <= min_conf <= 1.0:
            raise ValueError(f"min_confidence: expected a number in [0, 1], got "
                             f"{min_confidence!r}")
        if min_conf > 0 and success_threshold is None and success is None:
            raise ValueError("min_confidence gates the success rule: give success_threshold "
                             "or success")
        #: Smallest fused confidence of the gated keypoints that lets success fire (0: none).
        self.min_confidence = min_conf
        #: ``"negative"`` or ``"tanh"``, see the class docstring.
        self.shaping = shaping
        self.length = None if length is None else float(length)
        self.success_bonus = float(success_bonus)

        below = _find_keypoint_observation(env)
        if keypoint_source not in ("auto", "predicted", "true"):
            raise ValueError(f"keypoint_source: expected 'auto', 'predicted' or 'true', got "
                             f"{keypoint_source!r}")
        if keypoint_source == "predicted" and below is None:
            raise ValueError("keypoint_source='predicted' needs a KeypointObservation below "
                             "KeypointReward (wrap the env in KeypointObservation first)")
        predicted = below is not None and keypoint_source != "true"
        #: ``"predicted"`` (``info["predicted_keypoints"]``) or ``"true"`` (``info["keypoints"]``).
        self.keypoint_source = "predicted" if predicted else "true"
        self._info_key = "predicted_keypoints" if predicted else "keypoints"
        if predicted:
            names = list(below.keypoint_names)  # type: ignore[union-attr]
        else:
            env_names = getattr(env.unwrapped, "keypoint_names", None)
            if env_names is None or not len(env_names):
                raise ValueError(
                    f"KeypointReward with ground-truth keypoints needs an env with "
                    f"keypoint_names and info['keypoints']; {type(env.unwrapped).__name__} has "
                    "none (put a KeypointObservation below it to use predicted keypoints)")
            names = list(env_names)
        #: Names of the keypoints, in the order of the source's ``(K, 3)`` array.
        self.keypoint_names: list[str] = names
        for term in self.terms:
            for name in (term.a, term.b):
                if name is not None and name not in self.keypoint_names:
                    raise ValueError(f"KeypointTerm: unknown keypoint {name!r}; the "
                                     f"{self.keypoint_source} keypoints are {self.keypoint_names}")
            if term.obs_key is not None:
                self._check_obs_key(term.obs_key)
        self._weights = np.array([t.weight for t in self.terms])
        gated = (list(dict.fromkeys(t.a for t in self.terms)) if confidence_keypoints is None
                 else list(confidence_keypoints))
        unknown = [n for n in gated if not isinstance(n, str) or n not in self.keypoint_names]
        if unknown or not gated:
            raise ValueError(f"confidence_keypoints: expected names among "
                             f"{self.keypoint_names}, got {confidence_keypoints!r}")
        #: Keypoints whose confidence gates success (with ``min_confidence > 0``).
        self.confidence_keypoints: list[str] = gated
        self._gate_index = np.array([self.keypoint_names.index(n) for n in gated])
        #: Whether the gate is applied (predicted keypoints and ``min_confidence > 0``).
        self.gated = self.keypoint_source == "predicted" and self.min_confidence > 0

    def _check_obs_key(self, key: str) -> None:
        space = self.env.observation_space
        entries = space.spaces if isinstance(space, spaces.Dict) else {}
        if key not in entries or getattr(entries[key], "shape", None) != (3,):
            points = [k for k, s in entries.items() if getattr(s, "shape", None) == (3,)]
            raise ValueError(f"KeypointTerm: obs_key {key!r} is not a (3,) entry of the "
                             f"observation; the (3,) entries are {points}")

    # ------------------------------------------------------------------ distances
    def term_distances(self, keypoints: np.ndarray,
                       obs: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Unweighted distance of every term.

        Args:
            keypoints: ``(K, 3)`` m, in the order of :attr:`keypoint_names`.
            obs: the observation, for terms with ``obs_key``.

        Returns:
            ``(T,)`` float64 m: ``|p(a_i) - (q_i + offset_i)|``.
        """
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.shape != (len(self.keypoint_names), 3):
            raise ValueError(f"keypoints: expected shape {(len(self.keypoint_names), 3)} "
                             f"({self.keypoint_names}), got {kp.shape}")

        names = self.keypoint_names
        out = np.empty(len(self.terms))
        for i, term in enumerate(self.terms):
            if term.b is not None:
                q = kp[names.index(term.b)]
            elif term.target is not None:
                q = np.asarray(term.target)
            else:
                if obs is None or term.obs_key not in obs:
                    raise ValueError(f"KeypointTerm({term.a!r}) needs observation entry "
                                     f"{term.obs_key!r}, which this observation lacks")
                q = np.asarray(obs[term.obs_key], dtype=np.float64)
            out[i] = np.linalg.norm(kp[names.index(term.a)] - (q + np.asarray(term.offset)))
        return out

    def keypoint_distance(self, keypoints: np.ndarray,
                          obs: Mapping[str, np.ndarray] | None = None) -> float:
        """``D = sum_i weight_i * |p(a_i) - (q_i + offset_i)|`` in m for ``(K, 3)``
        keypoints (see :meth:`term_distances`)."""
        return float(self._weights @ self.term_distances(keypoints, obs))

    def reward_for(self, distance: float, success: bool | None,
                   flags: Mapping[str, Any] | None = None) -> float:
        """The reward of a step from its keypoint distance, success and info flags.

        Args:
            distance: ``D`` (m), :meth:`keypoint_distance` of the step's keypoints.
            success: the success rule's verdict (None: no rule, no bonus).
            flags: the step's info (or any mapping); each ``penalties`` key that is true
                there subtracts its amount.

        Returns:
            ``scale * (f(D) + success_bonus * success - P)`` (see the class docstring); what
            :meth:`step` returns, so that recorded episodes can be relabelled exactly.
        """
        if self.shaping == "tanh":
            assert self.length is not None
            shaped = 1.0 - math.tanh(max(float(distance), 0.0) / self.length)
        else:
            shaped = -float(distance)
        penalty = sum(v for k, v in self.penalties.items() if bool((flags or {}).get(k, False)))
        bonus = self.success_bonus if success else 0.0
        return float(self.scale * (shaped + bonus - penalty))

    def gate_confidence(self, confidence: np.ndarray) -> float:
        """The smallest :func:`fused_confidence` of the gated keypoints.

        Args:
            confidence: ``(C, K)`` per-camera weights (``info["predicted_confidence"]``).

        Returns:
            A number in [0, 1]; success may fire when it is ``>= min_confidence``.
        """
        fused = fused_confidence(confidence)
        if fused.shape != (len(self.keypoint_names),):
            raise ValueError(f"confidence: expected (C, {len(self.keypoint_names)}) "
                             f"({self.keypoint_names}), got {np.shape(confidence)}")
        return float(fused[self._gate_index].min())

    def success_for(self, distance: float, confidence: np.ndarray | None = None) -> bool:
        """The threshold rule with the confidence gate: ``distance < success_threshold`` and,
        when the gate is on, :meth:`gate_confidence` ``>= min_confidence``.

        Args:
            distance: ``D`` (m).
            confidence: ``(C, K)`` per-camera weights; required when :attr:`gated`.

        Returns:
            Whether the step succeeds (what :meth:`step` reports for a threshold rule).

        Raises:
            ValueError: no ``success_threshold``, or the gate is on and no confidence came.
        """
        if self.success_threshold is None:
            raise ValueError("success_for: this KeypointReward has no success_threshold")
        if not float(distance) < self.success_threshold:
            return False
        if not self.gated:
            return True
        if confidence is None:
            raise ValueError("success_for: the confidence gate is on (min_confidence="
                             f"{self.min_confidence}); pass the (C, K) per-camera confidence")
        return self.gate_confidence(confidence) >= self.min_confidence

    def _evaluate(self, obs: Mapping[str, np.ndarray], info: dict[str, Any]
                  ) -> tuple[float, bool | None, dict[str, Any]]:
        if self._info_key not in info:
            raise KeyError(f"KeypointReward reads info[{self._info_key!r}] ({self.keypoint_source}"
                           f" keypoints), which the env did not return; info has {sorted(info)}")
        kp = np.asarray(info[self._info_key], dtype=np.float64)
        if not np.all(np.isfinite(kp)):
            raise ValueError(f"info[{self._info_key!r}] contains NaN or inf: {kp.tolist()}")
        dists = self.term_distances(kp, obs)
        total = float(self._weights @ dists)
        success: bool | None = None
        if self.success_threshold is not None:
            success = total < self.success_threshold
        elif self.success_fn is not None:
            success = bool(self.success_fn(kp))
        info = dict(info)
        if self.gated and success is not None:
            if "predicted_confidence" not in info:
                raise KeyError("KeypointReward with min_confidence reads "
                               "info['predicted_confidence'] (C, K), which the env did not "
                               f"return; info has {sorted(info)}")
            confidence = self.gate_confidence(info["predicted_confidence"])
            refused = bool(success) and confidence < self.min_confidence
            success = bool(success) and not refused
            info["keypoint_gate_confidence"] = confidence
            info["success_refused"] = refused
        info["keypoint_distance"] = total
        info["keypoint_distances"] = dists
        if success is not None:
            if "is_success" in info:
                info["is_success_true"] = bool(info["is_success"])
            info["is_success"] = success
        return total, success, info

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        """Reset the env; info gets the keypoint distance and success of the first frame."""
        obs, info = self.env.reset(seed=seed, options=options)
        _, _, info = self._evaluate(obs, info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; reward :meth:`reward_for` (``scale * (f(D) + bonus - penalties)``),
        success and termination from the keypoint rule."""
        obs, _, terminated, truncated, info = self.env.step(action)
        total, success, info = self._evaluate(obs, info)
        reward = self.reward_for(total, success, info)
        if self.terminate_on_success and success:
            terminated = True
        return obs, float(reward), bool(terminated), bool(truncated), info

    # ------------------------------------------------------------------ presets
    @classmethod
    def cable_insert(cls, env: gym.Env, success_threshold: float | None = None,
                     safety_penalty: float | None = None, terminate_on_success: bool = False,
                     scale: float = 1.0, keypoint_source: str = "auto",
                     reward_length: float | None = None,
                     success_bonus: float | None = None,
                     min_confidence: float = CABLE_MIN_CONFIDENCE) -> KeypointReward:
        """The insertion rule and reward of ``S3K-CableInsert-v0`` as a keypoint reward.

        ``D = |plug_tip - socket| + |plug_base - (socket + PLUG_EXPOSED * z)|`` (m), exactly
        :func:`s3k_envs.envs.cable.insertion_error`; success ``D < success_threshold``
        (:func:`~s3k_envs.envs.cable.insertion_success`), on predicted keypoints only when
        the plug is seen (``min_confidence``); reward ``scale * (1 - tanh(D /
        reward_length) + success_bonus * success - safety_penalty * left_safety_box)``
        (``shaping="tanh"``), which on ground truth equals the env's reward
        (:func:`~s3k_envs.envs.cable.insertion_reward`; the cable module's docstring says why
        it is shaped so).

        Args:
            env: a CableInsert env (possibly wrapped, e.g. in KeypointObservation).
            success_threshold: m; default the env's ``success_threshold`` option (0.025).
            safety_penalty: subtracted on the step the gripper leaves the safety box
                (``info["left_safety_box"]``); default the env's ``safety_penalty`` option.
            terminate_on_success, scale, keypoint_source: see :class:`KeypointReward`.
            reward_length: m; default the env's ``reward_length`` option (0.2).
            success_bonus: default the env's ``success_bonus`` option (100).
            min_confidence: the confidence gate on ``plug_tip`` and ``plug_base`` (see
                :class:`KeypointReward`; only predicted keypoints are gated), default
                :data:`CABLE_MIN_CONFIDENCE`; 0 turns it off.
        """
        from s3k_envs.envs.cable import PLUG_EXPOSED, CableInsertEnv

        defaults = CableInsertEnv.default_options()
        options = {**defaults, **(getattr(env.unwrapped, "options", None) or {})}
        if success_threshold is None:
            success_threshold = float(options["success_threshold"])
        if safety_penalty is None:
            safety_penalty = float(options["safety_penalty"])
        if reward_length is None:
            reward_length = float(options["reward_length"])
        if success_bonus is None:
            success_bonus = float(options["success_bonus"])
        terms = [KeypointTerm("plug_tip", "socket"),
                 KeypointTerm("plug_base", "socket", offset=(0.0, 0.0, PLUG_EXPOSED))]
        return cls(env, terms, success_threshold=success_threshold,
                   terminate_on_success=terminate_on_success, scale=scale,
                   penalties={"left_safety_box": safety_penalty} if safety_penalty else None,
                   keypoint_source=keypoint_source, shaping="tanh", length=reward_length,
                   success_bonus=success_bonus, min_confidence=min_confidence,
                   confidence_keypoints=["plug_tip", "plug_base"])


def cable_insert_reward(env: gym.Env, **kwargs: Any) -> KeypointReward:
    """:meth:`KeypointReward.cable_insert` as a function (same arguments)."""
    return KeypointReward.cable_insert(env, **kwargs)
