"""Telling an allocation failure on the device from any other error.

A chunk that does not fit is retried with half the slices; everything else is a real error.
CUDA reports running out of memory in several shapes: ``torch.cuda.OutOfMemoryError`` from the
caching allocator, and ``RuntimeError`` from the libraries that allocate their own workspace
(cuFFT plans, cuSOLVER and cuBLAS handles, cuDNN), each with its own wording; on a CPU,
``MemoryError`` or torch's allocator's ``RuntimeError``.
"""

from __future__ import annotations

import gc
import traceback

import torch

#: Phrases (lower case) of allocation failures in ``RuntimeError`` messages from torch and the CUDA libraries.
ALLOCATION_FAILURES = (
    "out of memory",
    "cufft_alloc_failed",
    "cusolver_status_alloc_failed",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "cusparse_status_alloc_failed",
    "cuda error: out of memory",
    "failed to allocate",
    "can't allocate memory",  # torch's CPU allocator
)


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` says the device ran out of memory (any of the forms above)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    if isinstance(exc, RuntimeError) and not isinstance(exc, NotImplementedError):
        text = str(exc).lower()
        return any(phrase in text for phrase in ALLOCATION_FAILURES)
    return False


def drop_failed_chunk(exc: BaseException) -> None:
    """Free the tensors the frames of a failed chunk still hold through ``exc``'s traceback
    (whoever keeps the exception object would otherwise keep the whole chunk alive)."""
    traceback.clear_frames(exc.__traceback__)
    exc.__traceback__ = None


def release_memory(device: torch.device) -> None:
    """Give the failed chunk's memory back before a retry: collect cycles, empty the CUDA cache."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
