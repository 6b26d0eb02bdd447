"""MultiViewCameras: a calibrated random camera rig on other people's MuJoCo envs.

Geometry is checked against MuJoCo's own renders (the views are MuJoCo free cameras, so
``mujoco.Renderer`` given the same free camera must draw the same image), against pixel
centroids of rendered spheres, and by triangulating the projected keypoints back.
"""

from __future__ import annotations

import copy
import math
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import env_render_passive_checker
from s3k_test_utils import close_mujoco_renderer

from s3k_envs import geometry as geo
from s3k_envs.keypoints import data, dataset, sampling
from s3k_envs.wrappers import MultiViewCameras
from s3k_envs.wrappers.multiview import make_multiview, register_multiview

PUSHER_KEYPOINTS = {"fingertip": "com:tips_arm", "object": "body:object", "goal": "body:goal"}


def pusher(render_mode: str | None = None, **options) -> MultiViewCameras:
    options.setdefault("image_size", 32)
    options.setdefault("keypoints", PUSHER_KEYPOINTS)
    return MultiViewCameras(gym.make("Pusher-v5", render_mode=render_mode), **options)


@pytest.fixture
def closing():
    """``closing(env)`` returns env and closes it after the test."""
    envs = []

    def register(env):
        envs.append(env)
        return env

    yield register
    for env in envs:
        env.close()


# --------------------------------------------------------------------------- API
@pytest.mark.parametrize("base_id", ["Pusher-v5", "Reacher-v5"])
def test_check_env(base_id, closing):
    keypoints = PUSHER_KEYPOINTS if base_id == "Pusher-v5" else ("body:fingertip",)
    env = closing(MultiViewCameras(gym.make(base_id, render_mode="rgb_array"), image_size=24,
                                   keypoints=keypoints))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Box(-inf, inf) and "wrapped env" advice
        # Other render modes would be re-created from the spec, "human" needs a display.
        check_env(env, skip_render_check=True)
        env.reset(seed=0)
        env_render_passive_checker(env)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] > 2 * 24 and frame.shape[1] > 2 * 24  # 2x2 mosaic of 24 px views


def test_observation_and_info_layout(closing):
    env = closing(pusher(image_size=(24, 40), num_cameras=3))
    inner = gym.make("Pusher-v5")
    try:
        obs, info = env.reset(seed=3)
        inner_obs, _ = inner.reset(seed=3)
    finally:
        inner.close()
    assert env.observation_space.contains(obs)
    assert obs["images"].shape == (3, 24, 40, 3) and obs["images"].dtype == np.uint8
    assert obs["intrinsics"].shape == (3, 3, 3) and obs["intrinsics"].dtype == np.float32
    assert obs["extrinsics"].shape == (3, 4, 4) and obs["extrinsics"].dtype == np.float32
    np.testing.assert_array_equal(obs["state"], inner_obs)  # the rig draws its own randomness
    assert env.get_wrapper_attr("keypoint_names") == ("fingertip", "object", "goal")
    assert info["keypoints"].shape == (3, 3) and info["keypoints"].dtype == np.float32
    assert info["keypoints_2d"].shape == (3, 3, 2) and info["keypoints_2d"].dtype == np.float32
    assert info["keypoints_visible"].shape == (3, 3) and info["keypoints_visible"].dtype == bool
    d = env.unwrapped.data
    np.testing.assert_allclose(info["keypoints"], np.stack(
        [d.body("tips_arm").xipos, d.body("object").xpos, d.body("goal").xpos]), atol=1e-6)
    uv, _ = geo.project(info["keypoints"].astype(np.float64), obs["intrinsics"].astype(np.float64),
                        obs["extrinsics"].astype(np.float64))
    np.testing.assert_allclose(uv, info["keypoints_2d"], atol=1e-3)
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and info["keypoints_2d"].shape == (3, 3, 2)


def test_dict_observations_are_merged_and_clashes_refused(closing):
    class DictObs(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = spaces.Dict({"qpos": env.observation_space})

        def observation(self, obs):
            return {"qpos": obs}

    env = closing(MultiViewCameras(DictObs(gym.make("Reacher-v5")), image_size=16))
    obs, info = env.reset(seed=0)
    assert set(obs) == {"images", "intrinsics", "extrinsics", "qpos"}
    assert info["keypoints"].shape == (0, 3) and info["keypoints_2d"].shape == (4, 0, 2)
    with pytest.raises(ValueError, match=r"already has \['extrinsics', 'images'"):
        MultiViewCameras(env, image_size=16)


def test_registered_pusher_id_and_options(closing):
    env = closing(gym.make("S3K-Pusher-v0", image_size=24, num_cameras=2))
    obs, info = env.reset(seed=0)
    assert obs["images"].shape == (2, 24, 24, 3)
    assert env.get_wrapper_attr("keypoint_names") == ("fingertip", "object", "goal")
    assert info["keypoints_visible"][:, 1:].any()  # the puck and the goal are in view
    with pytest.raises(ValueError, match=r"unknown option.*'colour'.*valid options"):
        gym.make("S3K-Pusher-v0", colour="red")


# --------------------------------------------------------------------------- geometry
def _segmentation_renderer(model: mujoco.MjModel, height: int, width: int):
    """A ``mujoco.Renderer`` on a copy of ``model`` that renders like the rig (no shadows or
    multisampling, so that segmentation ids are not blended at edges)."""
    twin = copy.deepcopy(model)
    twin.vis.quality.shadowsize = 0
    twin.vis.quality.offsamples = 0
    twin.vis.global_.offwidth = max(width, twin.vis.global_.offwidth)
    twin.vis.global_.offheight = max(height, twin.vis.global_.offheight)
    return twin, mujoco.Renderer(twin, height, width)


def test_views_are_mujoco_free_cameras_and_match_segmentation(closing):
    """obs images == mujoco.Renderer of the wrapper's free cameras; the puck's and the goal
    disc's segmentation centroids lie within 1 px of the projections of their centres."""
    height, width = 96, 128
    env = closing(pusher(image_size=(height, width), num_cameras=4))
    model, d = env.unwrapped.model, env.unwrapped.data
    twin, renderer = _segmentation_renderer(model, height, width)
    geoms = {name: [g for g in range(model.ngeom)
                    if model.geom_bodyid[g] == model.body(name).id] for name in ("object", "goal")}
    errors = []
    try:
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            intr = obs["intrinsics"].astype(np.float64)
            extr = obs["extrinsics"].astype(np.float64)
            for c, (cam, fovy) in enumerate(env.get_wrapper_attr("mjv_cameras")()):
                twin.vis.global_.fovy = fovy
                renderer.disable_segmentation_rendering()
                renderer.update_scene(d, camera=cam)
                rgb = renderer.render()
                # Same pixels (the rig renders through its own GL context and framebuffer;
                # measured: at most 1 level on < 0.01 % of the pixels).
                diff = np.abs(rgb.astype(int) - obs["images"][c])
                assert diff.max() <= 2 and np.mean(diff > 0) < 0.01, (seed, c)
                renderer.enable_segmentation_rendering()
                renderer.update_scene(d, camera=cam)
                seg = renderer.render()
                ids = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
                for name, k in (("object", 1), ("goal", 2)):
                    mask = np.isin(ids, geoms[name])
                    rows, cols = np.nonzero(mask)
                    if len(rows) < 20 or not info["keypoints_visible"][c, k]:
                        continue
                    if rows.min() == 0 or cols.min() == 0 or rows.max() == height - 1 \
                            or cols.max() == width - 1:
                        continue  # cut by the image border
                    # Partly hidden (arm or puck in front) moves the centroid: skip views where
                    # the pixel count differs from the area of the projected silhouette.
                    centre = d.geom_xpos[geoms[name][0]]
                    radius, half = model.geom_size[geoms[name][0]][:2]
                    ring = centre + np.array([[radius * math.cos(a), radius * math.sin(a), z]
                                              for a in np.linspace(0, 2 * np.pi, 64)
                                              for z in (-half, half)])
                    ring_uv, _ = geo.project(ring, intr[c], extr[c])
                    hull_area = _polygon_area(_convex_hull(ring_uv))
                    if abs(len(rows) - hull_area) > 0.1 * hull_area + 3:
                        continue
                    centroid = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
                    uv, _ = geo.project(centre, intr[c], extr[c])
                    errors.append(centroid - uv.reshape(2))
    finally:
        close_mujoco_renderer(renderer)
    errors = np.array(errors)
    assert len(errors) >= 10, len(errors)
    # Measured: RMS 0.16 px, largest component 0.32 px (blobs of 24-84 pixels).
    assert np.abs(errors).max() < 1.0, errors
    assert np.all(np.abs(errors.mean(axis=0)) < 0.25), errors.mean(axis=0)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1])


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


SPHERE_RADIUS = 0.02
SPHERE_COLORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]], dtype=float)
SPHERE_CENTRES = np.array([[-0.15, -0.1, 0.05], [0.0, -0.15, 0.12], [0.15, -0.05, 0.06],
                           [-0.1, 0.15, 0.1], [0.12, 0.12, 0.03]])


class SpheresEnv(gym.Env):
    """Not a Gymnasium MujocoEnv: any env with ``model`` and ``data`` will do. Unlit
    coloured spheres (a site at each centre) over a grey floor; body ``ball1`` also carries a
    site ``hidden`` at the centre of ``ball0``, inside another body's sphere."""

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self) -> None:
        geoms = "".join(
            f'<body name="ball{i}" pos="{p[0]} {p[1]} {p[2]}"><site name="tip{i}" pos="0 0 0"/>'
            f'<geom type="sphere" size="{SPHERE_RADIUS}" rgba="{c[0]} {c[1]} {c[2]} 1" '
            f'material="flat"/></body>'
            for i, (p, c) in enumerate(zip(SPHERE_CENTRES, SPHERE_COLORS, strict=True)))
        offset = SPHERE_CENTRES[0] - SPHERE_CENTRES[1]
        geoms = geoms.replace('<site name="tip1" pos="0 0 0"/>', '<site name="tip1" pos="0 0 0"/>'
                              f'<site name="hidden" pos="{offset[0]} {offset[1]} {offset[2]}"/>')
        xml = f"""<mujoco><asset><material name="flat" emission="1" specular="0"
            shininess="0" reflectance="0"/></asset><worldbody>
            <geom type="plane" size="1 1 0.1" rgba="0.3 0.3 0.3 1"/>{geoms}</worldbody></mujoco>"""
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        mujoco.mj_forward(self.model, self.data)
        return np.zeros(1), {}

    def step(self, action):
        return np.zeros(1), 0.0, False, False, {}


def _sphere_image_centre(centre, intr, extr) -> np.ndarray:
    """Centre of the ellipse a sphere projects to (its silhouette's centroid), px."""
    c = extr[:3, :3] @ centre + extr[:3, 3]
    q = np.outer(c, c) - (c @ c - SPHERE_RADIUS**2) * np.eye(3)
    k_inv = np.linalg.inv(intr)
    conic = k_inv.T @ q @ k_inv
    return np.linalg.solve(conic[:2, :2], -conic[:2, 2])


@pytest.mark.parametrize("size", [(64, 96), (80, 60)], ids=str)
def test_sphere_centroids_match_calibration(size, closing):
    """Pixel centroids of unlit spheres in obs["images"] vs the observed calibration (< 0.5 px,
    no half-pixel offset), on a plain gym.Env with a model and data."""
    env = closing(MultiViewCameras(SpheresEnv(), image_size=size, target=(0, 0, 0.07),
                                   distance=(0.55, 0.7), keypoints=[f"tip{i}" for i in range(5)]))
    height, width = size
    errors = []
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        intr, extr = obs["intrinsics"].astype(float), obs["extrinsics"].astype(float)
        uv, depth = geo.project(SPHERE_CENTRES, intr, extr)
        np.testing.assert_allclose(uv, info["keypoints_2d"], atol=1e-3)
        radius_px = intr[:, 1, 1, None] * SPHERE_RADIUS / depth
        for c in range(len(intr)):
            for i, rgb in enumerate(SPHERE_COLORS):
                margin = radius_px[c, i] + 2
                u, v = uv[c, i]
                others = np.delete(np.arange(len(SPHERE_CENTRES)), i)
                gap = np.linalg.norm(uv[c, others] - uv[c, i], axis=1)
                if not (margin < u < width - margin and margin < v < height - margin) or \
                        np.any(gap < radius_px[c, others] + radius_px[c, i] + 2):
                    continue
                assert info["keypoints_visible"][c, i]
                rows, cols = np.nonzero(np.all(obs["images"][c] == rgb * 255, axis=-1))
                assert abs(len(rows) - math.pi * radius_px[c, i] ** 2) < 0.35 * len(rows)
                centroid = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
                errors.append(centroid - _sphere_image_centre(SPHERE_CENTRES[i], intr[c],
                                                              extr[c]))
    errors = np.array(errors)
    assert len(errors) >= 15, len(errors)
    assert np.abs(errors).max() < 0.5, errors
    assert np.all(np.abs(errors.mean(axis=0)) < 0.1), errors.mean(axis=0)


def test_triangulated_labels_reproduce_the_keypoints(closing):
    env = closing(pusher(image_size=64))
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        for _ in range(3):
            obs, _, _, _, info = env.step(env.action_space.sample())
        intr = obs["intrinsics"].astype(np.float64)
        extr = obs["extrinsics"].astype(np.float64)
        uv = info["keypoints_2d"].astype(np.float64)  # (C, K, 2)
        origins, dirs = geo.pixel_rays(uv, intr, extr)  # (C, K, 3)
        points = geo.triangulate(np.swapaxes(origins, 0, 1), np.swapaxes(dirs, 0, 1))
        np.testing.assert_allclose(points, info["keypoints"], atol=2e-5)


def test_occluded_keypoints_are_not_visible(closing):
    """The centre of ball0 is visible as ball0's keypoint (its own body does not hide it) and
    hidden as a keypoint of another body (ball1's site ``hidden``)."""
    env = closing(MultiViewCameras(SpheresEnv(), image_size=32, target=(0, 0, 0.07),
                                   distance=(0.55, 0.7),
                                   keypoints={"own": "tip0", "other": "hidden"}))
    for seed in range(3):
        _, info = env.reset(seed=seed)
        np.testing.assert_allclose(info["keypoints"][0], info["keypoints"][1], atol=1e-6)
        in_view = (info["keypoints_2d"] >= 0).all(-1) & (info["keypoints_2d"] < 32).all(-1)
        assert in_view.all()
        assert info["keypoints_visible"][:, 0].all()
        assert not info["keypoints_visible"][:, 1].any()


# --------------------------------------------------------------------------- randomness
def test_rig_is_a_function_of_the_seed(closing):
    env = closing(pusher())
    obs_a, info_a = env.reset(seed=11)
    obs_b, _ = env.reset(seed=12)
    obs_c, info_c = env.reset(seed=11)
    for key in ("images", "intrinsics", "extrinsics", "state"):
        np.testing.assert_array_equal(obs_a[key], obs_c[key])
    np.testing.assert_array_equal(info_a["keypoints_2d"], info_c["keypoints_2d"])
    assert not np.allclose(obs_a["extrinsics"], obs_b["extrinsics"])
    obs_d, _ = env.reset()  # unseeded resets continue the seeded stream: a new rig
    assert not np.allclose(obs_c["extrinsics"], obs_d["extrinsics"])
    poses = env.get_wrapper_attr("camera_poses")
    assert len(poses) == 4 and len({round(p.fovy, 9) for p in poses}) == 4

    once = closing(pusher(randomize="once"))
    first, _ = once.reset(seed=11)
    again, _ = once.reset(seed=12)
    np.testing.assert_array_equal(first["extrinsics"], again["extrinsics"])
    np.testing.assert_array_equal(first["extrinsics"], obs_a["extrinsics"])


def _model_summary(model: mujoco.MjModel) -> dict[str, object]:
    return {
        "counts": (model.ncam, model.ngeom, model.nbody, model.nsite, model.nlight),
        "vis": (model.vis.global_.offwidth, model.vis.global_.offheight,
                model.vis.global_.fovy, model.vis.quality.shadowsize,
                model.vis.quality.offsamples),
        "geom": (model.geom_rgba.copy(), model.geom_size.copy(), model.geom_group.copy()),
    }


def test_wrapped_model_and_dynamics_are_unchanged(closing):
    plain = closing(gym.make("Pusher-v5"))
    env = closing(pusher(image_size=(24, 240), num_cameras=5))
    model = env.unwrapped.model
    before = _model_summary(model)
    plain_obs, _ = plain.reset(seed=5)
    obs, _ = env.reset(seed=5)
    actions = np.random.default_rng(0).uniform(-2, 2, (5, 7)).astype(np.float32)
    for action in actions:
        plain_obs, plain_r, *_ = plain.step(action)
        obs, r, *_ = env.step(action)
        np.testing.assert_array_equal(obs["state"], plain_obs)
        assert r == plain_r
    after = _model_summary(model)
    assert before["counts"] == after["counts"] and before["vis"] == after["vis"]
    for a, b in zip(before["geom"], after["geom"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert before["vis"][0] < 3 * 240  # the 3x2 tiling did not fit the model's own buffer


# --------------------------------------------------------------------------- errors
def test_clear_errors(closing, tmp_path):
    with pytest.raises(ValueError, match=r"expected a MuJoCo-based env.*CartPoleEnv"):
        MultiViewCameras(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"no site, body or geom named 'thumb'.*tips_arm"):
        pusher(keypoints=["thumb"])
    with pytest.raises(ValueError, match=r"no body named 'goal_x'.*bodies: \[world"):
        pusher(keypoints=["body:goal_x"])
    with pytest.raises(ValueError, match="unknown kind 'joint'"):
        pusher(keypoints=["joint:r_shoulder_pan_joint"])
    with pytest.raises(ValueError, match=r"names \['object'\] occur more than once"):
        pusher(keypoints=["object", "body:object"])
    with pytest.raises(ValueError, match="randomize"):
        pusher(randomize="step")
    with pytest.raises(ValueError, match="unknown option"):
        make_multiview("Pusher-v5", image_sise=32)
    # `s3k generate` on an env without cameras: with the default image_size option, and
    # without options (an env that takes no image_size).
    with pytest.raises(ValueError, match=r"expects a multi-view env.*MultiViewCameras.*"
                       r"register_multiview\('MyEnv-MultiView-v0', 'Pusher-v5'"):
        data.generate_dataset(tmp_path / "a", "Pusher-v5", 2, progress=False)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match=r"expected a multi-view env.*Box.*MultiViewCameras"):
        sampling.SampleGenerator(sampling.GenerationParams("Pusher-v5", {}, 0, 2, 0, None, 0.0, 8))
    env = closing(pusher())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


# --------------------------------------------------------------------------- datasets
def test_dataset_generation_on_the_pusher_id(tmp_path):
    out = data.generate_dataset(tmp_path / "pusher", "S3K-Pusher-v0", 4, 3, image_size=24,
                                seed=1, workers=1, progress=False, rollout_steps=4)
    manifest = dataset.read_manifest(out)
    assert manifest["keypoint_names"] == ["fingertip", "object", "goal"]
    arrays = dataset.load_arrays(out, verify_checksums=True)
    assert arrays["images"].shape == (4, 4, 24, 24, 3)
    assert arrays["keypoints_3d"].shape == (3, 3, 3) and arrays["label_mask"][:, :, 1:].any()
    # Labels are projections of the ground truth with the stored calibration.
    rows = arrays["label_rows"]
    uv, _ = geo.project(arrays["keypoints_3d"][:, None].astype(np.float64),
                        arrays["intrinsics"][rows].astype(np.float64),
                        arrays["extrinsics"][rows].astype(np.float64))
    mask = arrays["label_mask"]
    np.testing.assert_allclose(arrays["keypoints_2d"][mask], uv[mask], atol=1e-3)
    item = dataset.KeypointDataset(out)[0]
    assert tuple(item["images"].shape) == (4, 24, 24, 3)


def test_workers_can_make_an_id_registered_in_this_process(tmp_path):
    """Forkserver workers do not run this test module: the id reaches them from the parent."""
    new_id = "S3KTest-ReacherRig-v0"
    if new_id not in gym.registry:
        register_multiview(new_id, "Reacher-v5", keypoints=["body:fingertip"], num_cameras=2)
    a = data.generate_dataset(tmp_path / "a", new_id, 6, 2, image_size=16, workers=2,
                              progress=False)
    b = data.generate_dataset(tmp_path / "b", new_id, 6, 2, image_size=16, workers=1,
                              progress=False)
    arr_a, arr_b = dataset.load_arrays(a), dataset.load_arrays(b)
    for key in ("images", "extrinsics", "keypoints_2d"):
        np.testing.assert_array_equal(arr_a[key], arr_b[key])
