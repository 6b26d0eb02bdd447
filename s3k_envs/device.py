"""Which torch device to compute on, and torch's thread count without side effects.

``"auto"`` picks CUDA when a GPU is there, then Apple's MPS, then the CPU, so the same
command uses a lent GPU and still runs on a laptop. Checkpoints are always written with
CPU tensors (loadable anywhere).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: Accepted device names (plus ``cuda:N``).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    """Whether Apple's Metal backend can run here."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """A concrete ``torch.device`` for ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` /
    ``"mps"`` (None = ``"auto"``).

    Raises:
        ValueError: an unknown name, or a device this machine does not have (the message
            says what is available).
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    base = name.split(":", 1)[0]
    if base not in DEVICE_CHOICES or (base != "cuda" and ":" in name):
        raise ValueError(f"device: expected one of {list(DEVICE_CHOICES)} or 'cuda:N', "
                         f"got {device!r}")
    if base == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s); use "
                             "'auto' or 'cpu'")
    if base == "mps" and not mps_available():
        raise ValueError("device 'mps': Apple's Metal backend is not available here; use "
                         "'auto' or 'cpu'")
    return torch.device(name)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(threads)`` and restore the previous value
    afterwards (None: leave it alone), so that a library call does not change the
    process's setting behind the caller's back. Cheap enough to wrap every inference call
    (a pair of ``set_num_threads`` calls costs about a microsecond; nothing is set when the
    count is already ``threads``)."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or int(threads) < 1:
        raise ValueError(f"threads: expected an int >= 1 or None, got {threads!r}")
    before = torch.get_num_threads()
    if before == int(threads):
        yield
        return
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
