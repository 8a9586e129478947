"""mrirecon: accelerated MRI reconstruction from fastMRI HDF5 files."""

__version__ = "0.1.0"
