"""benchmarks.cable_agent_keypoints: phases, the recording predictor and the rule counts on
hand-made frames (no rendering)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmarks.cable_agent_keypoints import PHASES, RecordingPredictor, phase_of, summarise

SOCKET = np.array([0.5, 0.1, 0.2])
UP = np.array([0.0, 0.0, 0.01])  # PLUG_EXPOSED


def _true(tip: np.ndarray, inside: bool = False) -> np.ndarray:
    """(3, 3) true keypoints with the base 5 cm above the tip."""
    return np.stack([SOCKET if inside else tip, tip + np.array([0, 0, 0.05]), SOCKET])


@pytest.mark.parametrize(("offset", "inside", "phase"), [
    ((0.0, 0.0, -0.01), True, "inside"),
    ((0.02, 0.0, 0.003), False, "rim"),       # on the top face, 2 cm from the axis
    ((0.0, 0.03, -0.009), False, "rim"),      # just below the opening's height, beside it
    ((0.002, 0.0, 0.02), False, "above"),     # over the hole
    ((0.0, 0.0, 0.004), False, "above"),      # over the hole, within the rim's height
    ((0.07, 0.0, 0.0), False, "free"),        # beside the socket, too far for the rim
    ((0.0, 0.0, 0.08), False, "free"),        # high above
])
def test_phase_of(offset: tuple[float, float, float], inside: bool, phase: str) -> None:
    tip = SOCKET + np.array(offset)
    assert phase_of(_true(tip, inside), tip) == phase


class _FakePredictor:
    keypoint_names = ("plug_tip", "plug_base", "socket")

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, images: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray
                ) -> str:
        self.calls += 1
        return "prediction"


def test_recording_predictor_records_and_forwards() -> None:
    inner = _FakePredictor()
    rec = RecordingPredictor(inner)
    images = np.zeros((4, 8, 8, 3), np.uint8)
    assert rec.predict(images, np.eye(3)[None].repeat(4, 0), np.eye(4)[None].repeat(4, 0)) \
        == "prediction"
    images[:] = 7  # the record is a copy
    assert inner.calls == 1 and len(rec.frames) == 1 and rec.frames[0][0].max() == 0
    assert rec.keypoint_names == inner.keypoint_names
    twin = copy.deepcopy(rec)  # gymnasium copies wrapper arguments: must not recurse
    assert twin.keypoint_names == inner.keypoint_names
    with pytest.raises(AttributeError):
        _ = rec.no_such_attribute


def test_summarise_counts_false_fires_misses_and_early_episodes() -> None:
    """Two episodes of two frames; errors by hand (PLUG_EXPOSED 1 cm, threshold 2.5 cm)."""
    # error = |tip - socket| (0 once inside) + |base - (socket + 1 cm)|
    inserted = _true(SOCKET - np.array([0, 0, 0.03]), inside=True)  # 1.0 cm: success
    near = _true(SOCKET - np.array([0, 0, 0.012]), inside=True)     # 2.8 cm: not yet
    true = np.stack([near, inserted, near, near])
    # Prediction: frame 0 reads the base 1 cm too low (1.8 cm: fires early), frame 1 exact
    # (fires on the true success), frame 2 exact (2.8 cm), frame 3 as frame 0 but unconfident.
    pred = true.copy()
    pred[0, 1] -= np.array([0, 0, 0.01])
    conf = np.ones((4, 4, 3))
    conf[3] = 0.0
    pred[3, 1] -= np.array([0, 0, 0.01])  # would fire, but the gate refuses it
    error = np.array([0.028, 0.01, 0.028, 0.028])
    frames = {"episode": np.array([0, 0, 1, 1]), "step": np.array([1, 2, 1, 2]),
              "true": true, "error_m": error, "success": error < 0.025,
              "phase": np.full(4, PHASES.index("inside")),
              "pred/m": pred, "conf/m": conf}
    out = summarise(frames, "m", {"success_threshold": 0.025, "min_confidence": 0.3},
                    band=0.01)
    assert out["false_fires"] == 1 and out["misses"] == 0 and out["true_success_frames"] == 1
    assert out["early_episodes"] == 1  # episode 0 fired at step 1, its true success is step 2
    near_bias = out["bias_near_threshold_mm"]
    assert near_bias["frames"] == 3  # |2.8 - 2.5| <= 1 cm; 1.0 cm is outside the band
    assert near_bias["median"] == pytest.approx(-10.0)  # [-10, 0, -10] mm
    tip_inside = next(r for r in out["rows"] if r["phase"] == "inside"
                      and r["keypoint"] == "plug_base")
    assert tip_inside["frames"] == 4 and tip_inside["median_mm"] == pytest.approx(5.0)
