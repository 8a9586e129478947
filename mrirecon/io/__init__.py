"""The only code that knows file layouts: fastMRI HDF5 volumes and reconstructions, .npy import."""

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import (
    Volume,
    open_volume,
    read_reconstruction,
    write_reconstruction,
    write_volume,
)
from mrirecon.io.header import Header, make_header_xml, parse_header

__all__ = [
    "Header",
    "InputError",
    "Volume",
    "make_header_xml",
    "open_volume",
    "parse_header",
    "read_reconstruction",
    "write_reconstruction",
    "write_volume",
]
