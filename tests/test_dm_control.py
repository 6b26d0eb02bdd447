"""dm_control suite tasks (through Shimmy) with the S3K camera rig: Gymnasium's env checker,
exact calibration against MuJoCo's own renders, and the keypoint pipeline end to end
(``s3k generate`` -> ``s3k train`` -> ``KeypointObservation``)."""

from __future__ import annotations

import copy
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from s3k_test_utils import close_mujoco_renderer

from s3k_envs import cli, geometry
from s3k_envs.wrappers.keypoints import KeypointObservation
from s3k_envs.wrappers.multiview import mujoco_handles

pytest.importorskip("shimmy", reason="dm_control tasks need Shimmy (the dev extras install it)")

#: id -> the sphere keypoints whose segmentation centroid checks the calibration, and an
#: image size at which they cover enough pixels (the manipulator's ball: 2.2 cm radius)
TASKS = {"S3K-DMC-Reacher-v0": (("target", "fingertip"), 96),
         "S3K-DMC-Manipulator-v0": (("ball",), 192)}


@pytest.mark.parametrize("env_id", sorted(TASKS))
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id, image_size=24)
    try:
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=0)
        assert obs["images"].shape == (4, 24, 24, 3)
        assert info["keypoints"].shape == (len(env.get_wrapper_attr("keypoint_names")), 3)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", sorted(TASKS))
def test_calibration_matches_mujoco_renders(env_id: str) -> None:
    """The rig's images are MuJoCo's own render of its free cameras, and the segmentation
    centroid of every fully seen sphere lies within 1 px of the projection of its centre."""
    spheres, size = TASKS[env_id]
    env = gym.make(env_id, image_size=size)
    model, data = mujoco_handles(env)
    twin = copy.deepcopy(model)
    twin.vis.quality.shadowsize = 0
    twin.vis.quality.offsamples = 0
    twin.vis.global_.offwidth = max(size, twin.vis.global_.offwidth)
    twin.vis.global_.offheight = max(size, twin.vis.global_.offheight)
    renderer = mujoco.Renderer(twin, size, size)
    names = list(env.get_wrapper_attr("keypoint_names"))
    sources = env.get_wrapper_attr("keypoint_sources")
    errors = []
    try:
        for seed in range(4):
            obs, info = env.reset(seed=seed)
            for c, (cam, fovy) in enumerate(env.get_wrapper_attr("mjv_cameras")()):
                twin.vis.global_.fovy = fovy
                renderer.disable_segmentation_rendering()
                renderer.update_scene(data, camera=cam)
                diff = np.abs(renderer.render().astype(int) - obs["images"][c])
                # same picture up to rounding (dm_control's textured floor and skybox: 1-2
                # levels on up to ~12 % of the pixels; a camera off by a pixel would differ
                # by tens of levels along every edge)
                assert diff.max() <= 2, (seed, c, diff.max())
                renderer.enable_segmentation_rendering()
                renderer.update_scene(data, camera=cam)
                seg = renderer.render()
                ids = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
                for name in spheres:
                    k = names.index(name)
                    source = sources[k]
                    geoms = ([source.object_id] if source.kind == "geom" else
                             [g for g in range(model.ngeom)
                              if model.geom_bodyid[g] == source.object_id])
                    rows, cols = np.nonzero(np.isin(ids, geoms))
                    if len(rows) < 12 or not info["keypoints_visible"][c, k]:
                        continue
                    if min(rows.min(), cols.min()) == 0 or max(rows.max(), cols.max()) == size - 1:
                        continue  # cut by the border
                    # a sphere's silhouette is an ellipse whose centroid is the projection of
                    # its centre up to a perspective shift far below a pixel at this size;
                    # skip partly hidden spheres (fewer pixels than the disc they project to)
                    centre = data.geom_xpos[geoms[0]]
                    radius = model.geom_size[geoms[0]][0]
                    uv, depth = geometry.project(centre, obs["intrinsics"][c].astype(float),
                                                 obs["extrinsics"][c].astype(float))
                    focal = obs["intrinsics"][c][1, 1]
                    disc = np.pi * (focal * radius / float(np.ravel(depth)[0])) ** 2
                    if len(rows) < 0.85 * disc:
                        continue
                    centroid = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
                    errors.append(centroid - np.ravel(uv))
    finally:
        close_mujoco_renderer(renderer)
        env.close()
    errors = np.array(errors)
    assert len(errors) >= 5, len(errors)
    assert np.abs(errors).max() < 1.0, errors


@pytest.mark.parametrize("env_id", sorted(TASKS))
def test_keypoint_pipeline_end_to_end(env_id: str, tmp_path: Path) -> None:
    data_dir, run = tmp_path / "data", tmp_path / "run"
    cli.main(["generate", env_id, "--samples", "6", "--labelled", "all", "--image-size", "32",
              "--rollout-steps", "3", "--out", str(data_dir), "--no-progress"])
    cli.main(["train", "--labelled", str(data_dir), "--out", str(run), "--steps", "3",
              "--threads", "1", "--no-progress"])
    env = KeypointObservation(gym.make(env_id, image_size=32), str(run / "model.pt"))
    try:
        env.reset(seed=0)
        obs, *_ = env.step(env.action_space.sample())
        k = len(env.get_wrapper_attr("keypoint_names"))
        assert obs["keypoints"].shape == (k, 3) and np.isfinite(obs["keypoints"]).all()
        assert "images" not in obs
    finally:
        env.close()
