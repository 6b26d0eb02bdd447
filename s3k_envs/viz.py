"""Visualisation helpers: multi-view mosaics, keypoint overlays and videos."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Distinct colours for keypoints (RGB, uint8), cycled when K is larger.
KEYPOINT_COLORS = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230]],
    dtype=np.uint8,
)


def mosaic(images: np.ndarray, cols: int | None = None, border: int = 2) -> np.ndarray:
    """Tile C images into a grid (2x2 for C = 4).

    Args:
        images: ``(C, H, W, 3)`` uint8.
        cols: columns of the grid; default ``ceil(sqrt(C))``.
        border: white pixels between tiles.

    Returns:
        ``(rows*H + (rows-1)*border, cols*W + (cols-1)*border, 3)`` uint8.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected shape (C, H, W, 3), got {images.shape}")
    num, height, width, _ = images.shape
    cols = cols or math.ceil(math.sqrt(num))
    rows = math.ceil(num / cols)
    out = np.full(
        (rows * height + (rows - 1) * border, cols * width + (cols - 1) * border, 3),
        255, dtype=np.uint8,
    )
    for i in range(num):
        r, c = divmod(i, cols)
        y, x = r * (height + border), c * (width + border)
        out[y : y + height, x : x + width] = images[i]
    return out


def draw_points(
    image: np.ndarray,
    uv: np.ndarray,
    visible: np.ndarray | None = None,
    radius: int = 2,
    colors: np.ndarray = KEYPOINT_COLORS,
    hollow: bool = False,
) -> np.ndarray:
    """Draw keypoints on a copy of one image.

    Args:
        image: ``(H, W, 3)`` uint8.
        uv: ``(K, 2)`` pixel coordinates (u = column, v = row, top-left corner origin).
        visible: ``(K,)`` bool; invisible points are drawn hollow (ring) instead of filled.
        radius: marker radius in pixels.
        colors: ``(N, 3)`` uint8 colours, keypoint k uses ``colors[k % N]``.
        hollow: draw every point as a ring (e.g. predictions next to filled ground truth).

    Returns:
        ``(H, W, 3)`` uint8 copy with the markers.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width]
    for k, (u, v) in enumerate(np.asarray(uv, dtype=np.float64)):
        if not np.isfinite([u, v]).all():
            continue
        dist = np.hypot(cols + 0.5 - u, rows + 0.5 - v)
        ring = hollow or (visible is not None and not visible[k])
        mask = (np.abs(dist - radius) < 0.75) if ring else dist <= radius
        out[mask] = colors[k % len(colors)]
    return out


#: What the markers of :func:`draw_points` mean in the suite's figures.
TRUTH_MARKERS = ("dot: true keypoint, visible", "small ring: true, hidden or outside")
PREDICTION_MARKER = "large ring: predicted"


def legend(names: Sequence[str], width: int, notes: Sequence[str] = TRUTH_MARKERS,
           colors: np.ndarray = KEYPOINT_COLORS) -> np.ndarray:
    """A white strip naming each keypoint's colour, then what the markers mean.

    Args:
        names: K keypoint names; keypoint k is drawn in ``colors[k % N]``.
        width: px, the width of the figure the strip goes under.
        notes: lines of text after the colour key (e.g. :data:`TRUTH_MARKERS`).
        colors: ``(N, 3)`` uint8 colours.

    Returns:
        ``(h, width, 3)`` uint8; items wrap onto more lines when the width is short.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    line_h, pad, box = 13, 3, 9
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    items = [(str(n), tuple(int(v) for v in colors[k % len(colors)]))
             for k, n in enumerate(names)]
    lines: list[list[tuple[str, tuple[int, ...] | None]]] = [[]]
    x = pad
    for text, colour in items:
        w = box + 3 + int(measure.textlength(text, font=font)) + 8
        if lines[-1] and x + w > width:
            lines.append([])
            x = pad
        lines[-1].append((text, colour))
        x += w
    lines += [[(str(note), None)] for note in notes]
    image = Image.new("RGB", (max(int(width), 1), pad + line_h * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        x, y = pad, pad + row * line_h
        for text, colour in line:
            if colour is not None:
                draw.rectangle((x, y + 1, x + box, y + 1 + box), fill=colour)
                x += box + 3
            draw.text((x, y), text, fill=(0, 0, 0), font=font)
            x += int(draw.textlength(text, font=font)) + 8
    return np.asarray(image, dtype=np.uint8)


def with_legend(figure: np.ndarray, names: Sequence[str],
                notes: Sequence[str] = TRUTH_MARKERS) -> np.ndarray:
    """``figure`` ``(H, W, 3)`` uint8 with a :func:`legend` strip below it."""
    figure = np.asarray(figure, dtype=np.uint8)
    return np.concatenate([figure, legend(names, figure.shape[1], notes)], axis=0)


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 4.0) -> Path:
    """Write ``(H, W, 3)`` uint8 frames to an MP4 (or GIF, by suffix) atomically."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    if path.suffix.lower() == ".gif":
        imageio.mimsave(tmp, list(frames), duration=1000.0 / fps, loop=0)
    else:
        # Even sizes keep H.264 players happy; pad with white.
        padded = [_pad_even(np.asarray(f)) for f in frames]
        imageio.mimsave(tmp, padded, fps=fps, macro_block_size=1)
    tmp.replace(path)
    return path


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write one ``(H, W, 3)`` uint8 image as PNG atomically."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.png")
    imageio.imwrite(tmp, np.asarray(image, dtype=np.uint8))
    tmp.replace(path)
    return path


def _pad_even(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), constant_values=255)
