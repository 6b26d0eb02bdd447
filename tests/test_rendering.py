"""Rendering tests: calibration against MuJoCo's own pixels, several envs per process,
render_mode mosaics, camera counts and non-square images."""

from __future__ import annotations

import gc
import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from s3k_test_utils import close_mujoco_renderer, segmentation

from s3k_envs import geometry as geo
from s3k_envs.cameras import CameraRig, camera_calibration
from s3k_envs.envs.base import MultiViewEnv
from s3k_envs.rendering import MultiViewRenderer
from s3k_envs.viz import mosaic

# --------------------------------------------------------------------------- calibration

# Unlit (emissive, no specular) spheres in the 7 colours whose channels are 0 or 255, spread
# through the workspace. Each renders as exactly its rgba colour, so its pixels are found by
# colour in the env's own RGB images and by geom id in MuJoCo's segmentation renders.
SPHERE_RADIUS = 0.012
SPHERE_COLORS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=float
)
SPHERE_CENTRES = np.array(
    [[-0.08, -0.08, 0.02], [0.0, -0.07, 0.06], [0.08, -0.06, 0.03], [-0.07, 0.0, 0.09],
     [0.07, 0.01, 0.05], [-0.06, 0.08, 0.04], [0.06, 0.07, 0.1]]
)


class SphereEnv(MultiViewEnv):
    """Test scene: table, coloured marker spheres, gripper parked under the table."""

    def _build_task(self, spec: mujoco.MjSpec) -> None:
        for i, (pos, rgb) in enumerate(zip(SPHERE_CENTRES, SPHERE_COLORS, strict=True)):
            mat = spec.add_material(name=f"marker_mat_{i}")
            mat.rgba = [*rgb, 1.0]
            mat.emission, mat.specular, mat.shininess, mat.reflectance = 1.0, 0.0, 0.0, 0.0
            geom = spec.worldbody.add_geom(name=f"marker_{i}", type=mujoco.mjtGeom.mjGEOM_SPHERE,
                                           size=[SPHERE_RADIUS, 0, 0], pos=pos,
                                           material=f"marker_mat_{i}")
            geom.contype = geom.conaffinity = 0

    def _bind_task(self) -> None:
        self.marker_geoms = [
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"marker_{i}")
            for i in range(len(SPHERE_CENTRES))
        ]

    def _initial_gripper_pose(self, rng):
        return np.array([0.0, 0.0, -0.5]), np.array([1.0, 0.0, 0.0, 0.0])


def make_sphere_env(height: int, width: int) -> SphereEnv:
    return SphereEnv(image_size=(height, width), gripper_bounds=((-1, -1, -1), (1, 1, 1)))


def sphere_image_centre(centre: np.ndarray, radius: float, intr: np.ndarray,
                        extr: np.ndarray) -> np.ndarray:
    """Centre (u, v) of the ellipse a sphere projects to (= its silhouette's centroid).

    Under perspective this is not quite the projection of the sphere's centre; the
    difference is < 0.1 px here but is removed rather than absorbed in the tolerance. Rays
    ``d`` on the silhouette cone satisfy ``d^T (c c^T - (|c|^2 - r^2) I) d = 0`` (camera
    frame), i.e. the conic ``K^-T Q K^-1`` in pixels, whose centre solves ``A x = -b``.
    """
    c = extr[:3, :3] @ centre + extr[:3, 3]
    q = np.outer(c, c) - (c @ c - radius**2) * np.eye(3)
    k_inv = np.linalg.inv(intr)
    conic = k_inv.T @ q @ k_inv
    return np.linalg.solve(conic[:2, :2], -conic[:2, 2])


def check_sphere_centroids(images: np.ndarray, seg: np.ndarray | None, intr: np.ndarray,
                           extr: np.ndarray, marker_geoms: list[int]) -> np.ndarray:
    """Compare each clearly visible sphere's pixel centroid with the calibration.

    Returns ``(N, 2)`` errors (measured - predicted) of the spheres checked.
    """
    num_cams, height, width = images.shape[:3]
    uv, depth = geo.project(SPHERE_CENTRES, intr, extr)
    radius_px = intr[:, 1, 1, None] * SPHERE_RADIUS / depth  # (C, N)
    errors = []
    for c in range(num_cams):
        for i, rgb in enumerate(SPHERE_COLORS):
            u, v = uv[c, i]
            margin = radius_px[c, i] + 2
            if not (depth[c, i] > 0.05 and margin < u < width - margin
                    and margin < v < height - margin):
                continue  # cut by the border
            others = np.delete(np.arange(len(SPHERE_CENTRES)), i)
            gap = np.linalg.norm(uv[c, others] - uv[c, i], axis=1)
            if np.any(gap < radius_px[c, others] + radius_px[c, i] + 2):
                continue  # touching another marker in this view
            mask = np.all(images[c] == (rgb * 255).astype(np.uint8), axis=-1)
            rows, cols = np.nonzero(mask)
            expected_area = math.pi * radius_px[c, i] ** 2
            assert 0.5 * expected_area < len(rows) < 1.6 * expected_area, (c, i, len(rows))
            if seg is not None:  # MuJoCo's own renderer draws the same pixels
                seg_mask = seg[c] == marker_geoms[i]
                assert np.count_nonzero(seg_mask != mask) <= 1, (c, i)
            centroid = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
            predicted = sphere_image_centre(SPHERE_CENTRES[i], SPHERE_RADIUS, intr[c], extr[c])
            assert np.linalg.norm(predicted - uv[c, i]) < 0.2  # the correction is small
            err = centroid - predicted
            assert np.linalg.norm(err) < 0.5, (c, i, centroid, predicted)
            errors.append(err)
    return np.array(errors).reshape(-1, 2)


@pytest.mark.parametrize("size", [(96, 160), (128, 128), (120, 72)], ids=str)
def test_observed_calibration_matches_rendered_spheres(size):
    """Env observations: sphere centroids in obs["images"] vs project() with the observed
    (float32) calibration, checked against MuJoCo segmentation renders too."""
    env = make_sphere_env(*size)
    try:
        errors = []
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            seg = segmentation(env.model, env.data, env.rig.camera_ids(env.model), *size)
            errors.append(check_sphere_centroids(
                obs["images"], seg, obs["intrinsics"].astype(np.float64),
                obs["extrinsics"].astype(np.float64), env.marker_geoms))
        errors = np.concatenate(errors)
        assert len(errors) >= 40
        # No systematic offset (a half-pixel convention slip would show as ~0.5 here).
        assert np.all(np.abs(errors.mean(axis=0)) < 0.1), errors.mean(axis=0)
    finally:
        env.close()


@pytest.fixture(scope="module")
def rig_scene():
    """One sphere scene at 96x160 and a MultiViewRenderer for it."""
    height, width = 96, 160
    env = make_sphere_env(height, width)
    env.reset(seed=0)
    renderer = MultiViewRenderer(env.model, height, width, env.num_cameras)
    yield env, renderer
    renderer.close()
    env.close()


# No shrinking: each example renders, and a failing example is informative as it is.
@settings(max_examples=6, deadline=None, derandomize=True,
          phases=(Phase.explicit, Phase.generate))
@given(
    seed=st.integers(0, 2**32 - 1),
    distance=st.floats(0.35, 0.7),
    elevation=st.floats(math.radians(15), math.radians(75)),
    fovy=st.floats(math.radians(35), math.radians(70)),
    jitter=st.floats(0.0, 0.03),
)
def test_random_rigs_match_rendered_spheres(rig_scene, seed, distance, elevation, fovy, jitter):
    """CameraRig poses + camera_calibration vs the pixels MultiViewRenderer draws."""
    env, renderer = rig_scene
    rig = CameraRig(target=(0.0, 0.0, 0.05), num_cameras=env.num_cameras,
                    distance=(distance, distance), elevation=(elevation, elevation + 0.1),
                    fovy=(fovy, fovy), lookat_jitter=jitter)
    model, data = env.model, env.data
    rig.apply(model, rig.sample(np.random.default_rng(seed)))
    mujoco.mj_forward(model, data)
    ids = rig.camera_ids(model)
    images = renderer.render(data, ids)
    intr, extr = camera_calibration(model, data, ids, renderer.width, renderer.height)
    seg = segmentation(model, data, ids, renderer.height, renderer.width)
    errors = check_sphere_centroids(images, seg, intr, extr, env.marker_geoms)
    assert len(errors) >= 8


# --------------------------------------------------------------------------- several envs


def _is_real_image(images: np.ndarray) -> bool:
    return images.mean() > 30 and images.std() > 5


@pytest.mark.parametrize("dispose", ["close", "del"])
def test_freeing_one_env_keeps_the_other_rendering(dispose):
    env_a = gym.make("S3K-Box-v0", image_size=32)
    env_b = gym.make("S3K-BoxDistractors-v0", image_size=32)
    try:
        obs_a, _ = env_a.reset(seed=0)
        before, _ = env_b.reset(seed=1)  # B's GL context is now the current one
        assert _is_real_image(obs_a["images"]) and _is_real_image(before["images"])
        if dispose == "close":
            env_a.close()
        del env_a, obs_a
        gc.collect()
        after, _ = env_b.reset(seed=1)
        assert _is_real_image(after["images"])
        assert np.array_equal(after["images"], before["images"])
        stepped, *_ = env_b.step(np.zeros(6, dtype=np.float32))
        assert _is_real_image(stepped["images"])
        fresh = gym.make("S3K-BoxDistractors-v0", image_size=32)
        try:
            again, _ = fresh.reset(seed=1)
            assert np.array_equal(again["images"], before["images"])
        finally:
            fresh.close()
        after2, _ = env_b.reset(seed=1)  # and B survives the fresh env's close too
        assert np.array_equal(after2["images"], before["images"])
    finally:
        env_b.close()


@pytest.mark.parametrize("dispose", ["close", "del"])
def test_freeing_an_env_keeps_a_foreign_mujoco_renderer_rendering(dispose):
    """Another MuJoCo renderer in the process (e.g. of someone else's env) whose GL context
    is current while an S3K env is freed must keep its images. (Measured here: freeing a
    MuJoCo GL context while a ``mujoco.Renderer``'s context is current breaks that
    renderer, so this catches an env that frees without making its own context current.)"""
    env = gym.make("S3K-Box-v0", image_size=32)
    env.reset(seed=0)
    u = env.unwrapped
    model, data, cam = u.model, u.data, int(u._cam_ids[0])
    other = mujoco.Renderer(model, 32, 32)
    try:
        other.update_scene(data, camera=cam)
        before = other.render().copy()  # the foreign renderer's context is now current
        assert _is_real_image(before)
        if dispose == "close":
            env.close()
        del env, u
        gc.collect()
        other.update_scene(data, camera=cam)
        after = other.render()
        assert np.array_equal(after, before)
    finally:
        close_mujoco_renderer(other)


def test_freeing_a_mujoco_renderer_keeps_env_rendering():
    env = gym.make("S3K-Box-v0", image_size=32)
    try:
        before, _ = env.reset(seed=2)
        u = env.unwrapped
        # segmentation() creates, uses and frees its own mujoco.Renderer in between.
        segmentation(u.model, u.data, u._cam_ids, 32, 32)
        after, _ = env.reset(seed=2)
        assert np.array_equal(after["images"], before["images"])
    finally:
        env.close()


def test_make_reset_close_loop_keeps_rendering():
    keep = gym.make("S3K-Box-v0", image_size=32)  # a long-lived env beside the loop
    try:
        reference, _ = keep.reset(seed=0)
        for i in range(5):
            env = gym.make("S3K-Box-v0", image_size=32)
            obs, _ = env.reset(seed=i)
            assert _is_real_image(obs["images"]), i
            if i == 0:
                assert np.array_equal(obs["images"], reference["images"])
            if i % 2 == 0:  # the others are only garbage-collected
                env.close()
            del env
            gc.collect()
        obs, _ = keep.reset(seed=0)
        assert np.array_equal(obs["images"], reference["images"])
    finally:
        keep.close()


def test_reset_after_close_renders_again(make_env):
    env = make_env("S3K-Box-v0")
    first, _ = env.reset(seed=0)
    env.close()
    env.close()  # idempotent
    again, _ = env.reset(seed=0)
    assert np.array_equal(again["images"], first["images"])


# --------------------------------------------------------------------------- render modes


@pytest.mark.parametrize("env_id", ["S3K-Box-v0", "S3K-BoxDistractors-v0"])
def test_rgb_array_render_is_a_2x2_mosaic(env_id, make_env):
    env = make_env(env_id, render_mode="rgb_array", image_size=40)
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.shape == mosaic(obs["images"]).shape == (2 * 40 + 2, 2 * 40 + 2, 3)
    assert np.array_equal(frame, mosaic(obs["images"]))
    assert np.array_equal(frame[:40, :40], obs["images"][0])
    assert np.array_equal(frame[42:, 42:], obs["images"][3])
    obs, *_ = env.step(env.action_space.sample())
    assert np.array_equal(env.render(), mosaic(obs["images"]))


def test_render_without_render_mode_returns_none(make_env):
    env = make_env("S3K-Box-v0")
    env.reset(seed=0)
    with pytest.warns(UserWarning):
        assert env.unwrapped.render() is None


@pytest.mark.parametrize("num_cameras", [1, 2, 3, 5])
def test_other_camera_counts(num_cameras, make_env):
    env = make_env("S3K-Box-v0", num_cameras=num_cameras, render_mode="rgb_array",
                   image_size=32)
    obs, info = env.reset(seed=0)
    k = len(env.unwrapped.keypoint_names)
    assert obs["images"].shape == (num_cameras, 32, 32, 3)
    assert obs["intrinsics"].shape == (num_cameras, 3, 3)
    assert obs["extrinsics"].shape == (num_cameras, 4, 4)
    assert info["keypoints_2d"].shape == (num_cameras, k, 2)
    assert info["keypoints_visible"].shape == (num_cameras, k)
    assert env.observation_space.contains(obs)
    for c in range(num_cameras):
        assert _is_real_image(obs["images"][c]), c
        for other in range(c):
            assert not np.array_equal(obs["images"][c], obs["images"][other]), (c, other)
    frame = env.render()
    assert np.array_equal(frame, mosaic(obs["images"]))
    obs, *_ = env.step(env.action_space.sample())
    assert obs["images"].shape == (num_cameras, 32, 32, 3)


def test_non_square_images(make_env):
    height, width = 96, 160
    env = make_env("S3K-Box-v0", image_size=(height, width), render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    assert obs["images"].shape == (4, height, width, 3)
    intr = obs["intrinsics"].astype(np.float64)
    np.testing.assert_allclose(intr[:, 0, 2], width / 2)
    np.testing.assert_allclose(intr[:, 1, 2], height / 2)
    fovy = np.radians(env.unwrapped.model.cam_fovy[env.unwrapped.rig.camera_ids(
        env.unwrapped.model)])
    np.testing.assert_allclose(intr[:, 1, 1], (height / 2) / np.tan(fovy / 2), rtol=1e-6)
    np.testing.assert_allclose(intr[:, 0, 0], intr[:, 1, 1])
    assert env.render().shape == (2 * height + 2, 2 * width + 2, 3)
    for c in range(4):
        assert _is_real_image(obs["images"][c]), c
    # The box's keypoints are near the image centre and visible in every view.
    assert info["keypoints_visible"].all()
