"""Fast offscreen rendering of C camera views of one MuJoCo scene.

All views are drawn into tiles of one offscreen framebuffer and read back with a single
``mjr_readPixels``: with software GL (Mesa llvmpipe) the read-back is where the CPU waits for
the rasteriser, so one read per step instead of one per camera roughly halves the cost.

Each renderer owns its GL context and makes it current before every render *and before
freeing*: freeing MuJoCo's GL objects while another env's context is current deletes that
env's objects instead (it then renders black frames).
"""

from __future__ import annotations

import atexit
import math
import os
import weakref
from collections.abc import Sequence

import mujoco
import numpy as np
from mujoco.rendering.classic import gl_context

_LIVE: weakref.WeakSet[MultiViewRenderer] = weakref.WeakSet()
_ATEXIT_REGISTERED = False
#: pid of the process whose GL state this module has touched (None: no context yet).
_GL_PID: int | None = None


class ForkAfterRenderingError(RuntimeError):
    """A GL context was requested in a process forked after its parent had rendered."""


def check_not_forked_after_rendering() -> None:
    """Raise :class:`ForkAfterRenderingError` if this process is a ``fork`` child of a parent
    that had created a GL context: Mesa's (EGL/OSMesa) threads do not survive ``fork``, and
    the child's first context hangs forever (e.g. ``AsyncVectorEnv`` with its default
    ``fork`` start method after the parent rendered one frame)."""
    if _GL_PID is not None and _GL_PID != os.getpid():
        raise ForkAfterRenderingError(
            f"this process (pid {os.getpid()}) was forked from pid {_GL_PID} after that process "
            "had created a GL context; rendering here would hang. Start worker processes with "
            "'forkserver' or 'spawn' instead of 'fork', e.g. "
            "gymnasium.vector.AsyncVectorEnv(env_fns, context='forkserver') or "
            "multiprocessing.get_context('forkserver')")


def _close_all() -> None:
    # Runs before EGL's own atexit hook (registered earlier, so it runs later): freeing
    # contexts after eglTerminate raises noisy errors at interpreter exit. A fork child does
    # not own its parent's contexts (touching them can hang): leave them alone.
    if _GL_PID != os.getpid():
        return
    for renderer in list(_LIVE):
        renderer.close()


def tile_layout(num_views: int) -> tuple[int, int]:
    """Rows and columns of the framebuffer tiling for ``num_views`` views."""
    cols = math.ceil(math.sqrt(num_views))
    return math.ceil(num_views / cols), cols


class MultiViewRenderer:
    """Render C fixed cameras of a model at ``height x width`` each.

    Args:
        model: compiled model; its ``vis.global_.offwidth/offheight`` must hold the tiling
            (``cols * width`` by ``rows * height``, see :func:`tile_layout`).
        height, width: size of one view in pixels.
        num_views: C, the largest number of cameras rendered per call.
    """

    def __init__(self, model: mujoco.MjModel, height: int, width: int, num_views: int) -> None:
        global _ATEXIT_REGISTERED
        self._ctx: mujoco.MjrContext | None = None
        self._gl = None
        rows, cols = tile_layout(num_views)
        buf_w, buf_h = cols * width, rows * height
        if buf_w > model.vis.global_.offwidth or buf_h > model.vis.global_.offheight:
            raise ValueError(
                f"offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight} "
                f"is smaller than the {buf_w}x{buf_h} needed for {num_views} views of "
                f"{width}x{height}; set <visual><global offwidth/offheight> in the model"
            )
        self.model = model
        self.height, self.width, self.num_views = height, width, num_views
        self._rows, self._cols = rows, cols
        global _GL_PID
        check_not_forked_after_rendering()
        _GL_PID = os.getpid()
        self._gl = gl_context.GLContext(buf_w, buf_h)
        self._gl.make_current()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._ctx)
        self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 2 * model.ngeom + 100))
        self.option = mujoco.MjvOption()
        self.option.sitegroup[:] = 0  # sites are annotations, not scene content
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._pert = mujoco.MjvPerturb()
        self._full = mujoco.MjrRect(0, 0, buf_w, buf_h)
        self._buffer = np.empty((buf_h, buf_w, 3), dtype=np.uint8)
        _LIVE.add(self)
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_all)
            _ATEXIT_REGISTERED = True

    def render(self, data: mujoco.MjData, cam_ids: np.ndarray,
               out: np.ndarray | None = None) -> np.ndarray:
        """Render the cameras ``cam_ids`` (C ids) of ``data``.

        Returns:
            ``(C, H, W, 3)`` uint8, row 0 = top of each image (written into ``out`` if given).
        """
        if self._ctx is None:
            raise RuntimeError("render() called after close()")
        num = len(cam_ids)
        if num > self.num_views:
            raise ValueError(f"renderer was built for {self.num_views} views, got {num}")
        if out is None:
            out = np.empty((num, self.height, self.width, 3), dtype=np.uint8)
        self._gl.make_current()
        cat = mujoco.mjtCatBit.mjCAT_ALL.value
        for c, cam_id in enumerate(cam_ids):
            self._camera.fixedcamid = int(cam_id)
            mujoco.mjv_updateScene(self.model, data, self.option, self._pert, self._camera,
                                   cat, self._scene)
            mujoco.mjr_render(self._viewport(c), self._scene, self._ctx)
        return self._read_tiles(num, out)

    def render_free(self, data: mujoco.MjData, cameras: Sequence[mujoco.MjvCamera],
                    fovy: Sequence[float], out: np.ndarray | None = None) -> np.ndarray:
        """Render free cameras, i.e. views that are not cameras of the model.

        Each ``mujoco.MjvCamera`` of type ``mjCAMERA_FREE`` is placed by MuJoCo from its
        ``lookat`` (3,) m, ``distance`` m, ``azimuth`` and ``elevation`` (degrees); its
        vertical field of view is ``fovy[c]`` degrees (MuJoCo gives every free camera
        ``model.vis.global_.fovy``: it is set per view while the scene is built and
        restored before returning, so the model is left as it was).

        Args:
            data: the state to draw.
            cameras: C free cameras.
            fovy: ``(C,)`` vertical fields of view in degrees, in (0, 180).
            out: optional ``(C, H, W, 3)`` uint8 array to write into.

        Returns:
            ``(C, H, W, 3)`` uint8, row 0 = top of each image.
        """
        if self._ctx is None:
            raise RuntimeError("render_free() called after close()")
        num = len(cameras)
        if num > self.num_views:
            raise ValueError(f"renderer was built for {self.num_views} views, got {num}")
        fovy = [float(f) for f in fovy]
        if len(fovy) != num or not all(0.0 < f < 180.0 for f in fovy):
            raise ValueError(f"fovy: expected {num} angles in (0, 180) degrees, got {fovy}")
        free = mujoco.mjtCamera.mjCAMERA_FREE.value
        if any(int(cam.type) != free for cam in cameras):
            raise ValueError("cameras: expected mujoco.MjvCamera objects of type mjCAMERA_FREE")
        if out is None:
            out = np.empty((num, self.height, self.width, 3), dtype=np.uint8)
        self._gl.make_current()
        cat = mujoco.mjtCatBit.mjCAT_ALL.value
        vis = self.model.vis.global_
        saved_fovy = vis.fovy
        try:
            for c, cam in enumerate(cameras):
                vis.fovy = fovy[c]
                mujoco.mjv_updateScene(self.model, data, self.option, self._pert, cam, cat,
                                       self._scene)
                mujoco.mjr_render(self._viewport(c), self._scene, self._ctx)
        finally:
            vis.fovy = saved_fovy
        return self._read_tiles(num, out)

    def _read_tiles(self, num: int, out: np.ndarray) -> np.ndarray:
        """Read the framebuffer once and copy the first ``num`` tiles into ``out``."""
        mujoco.mjr_readPixels(self._buffer, None, self._full, self._ctx)
        # OpenGL rows run bottom-up: tile (r, col) with r counted from the top is found at
        # buffer rows counted from the bottom.
        flipped = self._buffer[::-1]
        for c in range(num):
            r, col = divmod(c, self._cols)
            y, x = r * self.height, col * self.width
            out[c] = flipped[y : y + self.height, x : x + self.width]
        return out

    def _viewport(self, index: int) -> mujoco.MjrRect:
        r, col = divmod(index, self._cols)
        bottom = (self._rows - 1 - r) * self.height
        return mujoco.MjrRect(col * self.width, bottom, self.width, self.height)

    def close(self) -> None:
        """Free the GL resources (idempotent)."""
        if self._ctx is not None:
            if self._gl is not None:
                try:
                    self._gl.make_current()
                except Exception:
                    pass
            self._ctx.free()
            self._ctx = None
        if self._gl is not None:
            try:
                self._gl.free()
            except Exception:
                pass
            self._gl = None
        _LIVE.discard(self)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def render_depth_segmentation(self, data: mujoco.MjData, cam_ids: np.ndarray
                                  ) -> tuple[np.ndarray, np.ndarray]:
        """Depth and geom segmentation of the cameras ``cam_ids`` (C ids) of ``data``.

        Drawn with MuJoCo's segmentation flags (``mjRND_SEGMENT`` + ``mjRND_IDCOLOR``: flat
        id colours, no lighting or blending), which also makes the depth buffer exact at the
        pixel centres. The scene flags are restored afterwards, so colour rendering is
        unaffected.

        Returns:
            depth: ``(C, H, W)`` float32, z of the first surface along each pixel centre's
                ray in that camera's frame, metres (the ``depth`` of
                :func:`s3k_envs.geometry.project`); ``zfar * extent`` where nothing is hit.
            geoms: ``(C, H, W)`` int32, id of the geom seen at each pixel, -1 where none
                (background, or a decoration that is not a model geom).
            Row 0 is the top of each image, like :meth:`render`.
        """
        if self._ctx is None:
            raise RuntimeError("render_depth_segmentation() called after close()")
        num = len(cam_ids)
        if num > self.num_views:
            raise ValueError(f"renderer was built for {self.num_views} views, got {num}")
        self._gl.make_current()
        cat = mujoco.mjtCatBit.mjCAT_ALL.value
        flags = self._scene.flags
        saved = flags.copy()
        geom_type = int(mujoco.mjtObj.mjOBJ_GEOM)
        lookups = []
        try:
            flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
            flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
            for c, cam_id in enumerate(cam_ids):
                self._camera.fixedcamid = int(cam_id)
                mujoco.mjv_updateScene(self.model, data, self.option, self._pert, self._camera,
                                       cat, self._scene)
                # segid -> geom id for this camera's scene (index 0 = background).
                lookup = np.full(self._scene.ngeom + 1, -1, dtype=np.int32)
                for g in self._scene.geoms[: self._scene.ngeom]:
                    if g.segid != -1 and g.objtype == geom_type:
                        lookup[g.segid + 1] = g.objid
                lookups.append(lookup)
                mujoco.mjr_render(self._viewport(c), self._scene, self._ctx)
            rgb = np.empty_like(self._buffer)
            zbuf = np.empty(self._buffer.shape[:2], dtype=np.float32)
            mujoco.mjr_readPixels(rgb, zbuf, self._full, self._ctx)
        finally:
            np.copyto(flags, saved)
        # Perspective depth buffer value in [0, 1] -> metric z along the optical axis.
        extent = self.model.stat.extent
        znear = float(self.model.vis.map.znear * extent)
        zfar = float(self.model.vis.map.zfar * extent)
        buf = zbuf.astype(np.float64)
        if self._ctx.readDepthMap == mujoco.mjtDepthMap.mjDEPTH_ZEROFAR:
            buf = 1.0 - buf  # reversed: 1 at the near plane, 0 at the far plane
        metric = (znear * zfar / (zfar - buf * (zfar - znear))).astype(np.float32)
        segid = (rgb[..., 0].astype(np.int64) + rgb[..., 1].astype(np.int64) * 256
                 + rgb[..., 2].astype(np.int64) * 65536)
        metric, segid = metric[::-1], segid[::-1]
        depth = np.empty((num, self.height, self.width), dtype=np.float32)
        geoms = np.empty((num, self.height, self.width), dtype=np.int32)
        for c in range(num):
            r, col = divmod(c, self._cols)
            y, x = r * self.height, col * self.width
            depth[c] = metric[y : y + self.height, x : x + self.width]
            ids = segid[y : y + self.height, x : x + self.width]
            lookup = lookups[c]
            geoms[c] = np.where(ids < len(lookup), lookup[np.minimum(ids, len(lookup) - 1)], -1)
        return depth, geoms
