"""Tests of benchmarks/cable_rlpd.py's observation: the live wrapper and the recorded
demonstrations encode the same state the same way (time left, plug motion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import cable_rlpd

torch.set_num_threads(1)


@pytest.mark.parametrize(("relative", "time_feature", "velocity", "dim"),
                         [(False, False, False, 22), (True, False, False, 19),
                          (True, True, False, 20), (True, True, True, 26)])
def test_wrapper_matches_demonstration_encoding(relative, time_feature, velocity, dim):
    demos, stats = cable_rlpd.record_demos(1, 0, relative, time_feature, velocity)
    assert stats["episodes"] == 1
    ep = demos[0]
    env = cable_rlpd.make_env(relative, time_feature, velocity)
    try:
        assert env.observation_space.shape == (dim,)
        obs, _ = env.reset(seed=0)
        np.testing.assert_allclose(obs, ep["observations"][0], atol=1e-6)
        for t in range(3):
            obs, *_ = env.step(ep["actions"][t])
            np.testing.assert_allclose(obs, ep["observations"][t + 1], atol=1e-6)
            if time_feature:
                assert obs[-1] == pytest.approx(1.0 - (t + 1) / 40)
    finally:
        env.close()
    if velocity:  # the plug starts at rest: no motion in the first observation
        np.testing.assert_array_equal(ep["observations"][0][19:25], 0.0)
