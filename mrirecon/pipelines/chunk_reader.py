"""A volume's k-space, slice chunk by slice chunk, onto the device, the next chunk read while the
current one is reconstructed.

``ChunkReader.read(start, stop)`` returns slices ``[start:stop]`` as a complex64 tensor on the
device, checked for NaN/Inf there (one host read per chunk; the same one-sentence error as
``Volume.read_kspace``), and starts reading ``[stop:stop + (stop - start)]`` in a background
thread (``read_ahead``). Reads go into two reused host buffers (pinned on CUDA, so the upload is
``non_blocking``): the thread fills one while the device works on the other, and no chunk
allocates fresh host memory. A read ahead that does not match the next request (the runner halved
the chunk after running out of memory) is waited for and dropped.

On a CPU the returned tensor *is* the host buffer: it stays valid until the next ``read``, so the
caller may modify it in place (the runner masks it there) but must not keep it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import Volume, nonfinite_kspace


def require_finite_tensor(volume: Volume, kspace: torch.Tensor, start: int, stop: int) -> None:
    """Raise ``InputError`` (the file and the slice range) if the complex ``kspace`` holds a NaN or an Inf."""
    # one reduction pass: NaN or Inf anywhere makes the sum non-finite; only then (or on an
    # overflow of a finite sum) the elementwise test decides
    values = torch.view_as_real(kspace)
    if not bool(torch.isfinite(values.sum())) and not bool(torch.isfinite(values).all()):
        raise InputError(volume.path, nonfinite_kspace(start, stop))


class _Buffer:
    """One reusable host buffer (pinned for CUDA) and the upload that last read from it."""

    def __init__(self, shape: tuple[int, ...], pinned: bool):
        self.tensor = torch.empty(shape, dtype=torch.complex64, pin_memory=pinned)
        self.array = self.tensor.numpy()
        self.upload_done: torch.cuda.Event | None = None

    def writable(self) -> np.ndarray:
        """The array, once the device has finished copying its previous content."""
        if self.upload_done is not None:
            self.upload_done.synchronize()
            self.upload_done = None
        return self.array


class ChunkReader:
    """Slice chunks of ``volume``'s k-space on ``device`` (see the module docstring)."""

    def __init__(self, volume: Volume, device: torch.device, read_ahead: bool = True):
        self.volume = volume
        self.device = device
        self.pinned = device.type == "cuda"
        self._buffers: list[_Buffer] = []
        self._turn = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kspace-read") if read_ahead else None
        self._ahead: tuple[tuple[int, int], _Buffer, Future[np.ndarray]] | None = None

    def _buffer(self, slices: int) -> _Buffer:
        """The next buffer in turn, (re)made when it is too small for ``slices``."""
        count = 1 if self._pool is None else 2
        if len(self._buffers) < count:
            self._buffers.append(None)  # type: ignore[arg-type]
        index = self._turn % count
        self._turn += 1
        buffer = self._buffers[index]
        if buffer is None or buffer.array.shape[0] < slices:
            if buffer is not None:
                buffer.writable()
            buffer = _Buffer((slices, *self.volume.kspace_shape[1:]), self.pinned)
            self._buffers[index] = buffer
        return buffer

    def _fill(self, buffer: _Buffer, start: int, stop: int) -> np.ndarray:
        return self.volume.read_kspace_into(buffer.writable(), start, stop)

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            _, _, future = self._ahead
            self._ahead = None
            if not future.cancel():
                future.exception()  # wait: it writes into a buffer; its error, if any, belongs to no request

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Slices ``[start:stop]`` on the device (checked), and the read of the next chunk started."""
        if self._ahead is not None and self._ahead[0] == (start, stop):
            _, buffer, future = self._ahead
            self._ahead = None
            future.result()
        else:
            self._drop_ahead()
            buffer = self._buffer(stop - start)
            self._fill(buffer, start, stop)
        host = buffer.tensor[: stop - start]  # the pinned tensor itself (not a numpy view): a true async copy
        if self.pinned:
            kspace = host.to(self.device, non_blocking=True)
            buffer.upload_done = torch.cuda.Event()
            buffer.upload_done.record()
        else:
            kspace = host
        require_finite_tensor(self.volume, kspace, start, stop)
        following = (stop, min(stop + (stop - start), self.volume.num_slices))
        if self._pool is not None and following[0] < following[1]:
            ahead = self._buffer(following[1] - following[0])
            self._ahead = (following, ahead, self._pool.submit(self._fill, ahead, *following))
        return kspace

    def close(self) -> None:
        """Wait for a read ahead still running and stop the thread (no thread outlives this)."""
        self._drop_ahead()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "ChunkReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
