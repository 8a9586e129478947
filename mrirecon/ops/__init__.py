"""Linear operators on slice batches and functionals with their proxes (see ``linop``, ``functionals``).

Every operator acts on tensors whose first dimension is the slice batch; per-slice quantities
(step sizes, weights, inner products) are ``(S,)`` tensors.
"""

from mrirecon.ops.finite_diff import FiniteDifference, grad, grad_adjoint
from mrirecon.ops.fourier import FFT2, Sampling
from mrirecon.ops.functionals import L1, Functional, L2Squared, SeparableSum, TransformedL1, Zero
from mrirecon.ops.linop import Compose, Identity, Linop, Multiply, Scaled, Sum, VStack
from mrirecon.ops.sense import Sensitivity, normalise_maps, sense_op
from mrirecon.ops.wavelet import Wavelet

__all__ = [
    "FFT2", "Compose", "FiniteDifference", "Functional", "Identity", "L1", "L2Squared", "Linop", "Multiply",
    "Sampling", "Scaled", "Sensitivity", "SeparableSum", "Sum", "TransformedL1", "VStack", "Wavelet", "Zero", "grad",
    "grad_adjoint", "normalise_maps", "sense_op",
]
