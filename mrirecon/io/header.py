"""The ISMRMRD XML header fastMRI files carry: parse the fields fastMRI uses, and synthesise one."""

from __future__ import annotations

import xml.etree.ElementTree as etree
from dataclasses import dataclass

ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"


class HeaderError(ValueError):
    """The header cannot be parsed or lacks a field fastMRI needs."""


@dataclass(frozen=True)
class Header:
    """The header fields fastMRI reads (``SliceDataset._retrieve_metadata``)."""

    encoded_size: tuple[int, int, int]
    recon_size: tuple[int, int, int]
    enc_limits_center: int
    enc_limits_max: int  # the header's ``maximum`` + 1, as fastMRI stores it

    @property
    def padding(self) -> tuple[int, int]:
        """``(padding_left, padding_right)``: columns ``[:left]`` and ``[right:]`` are zero padding."""
        left = self.encoded_size[1] // 2 - self.enc_limits_center
        return left, left + self.enc_limits_max

    @property
    def crop(self) -> tuple[int, int]:
        """The reconstruction crop ``(H, W)`` from ``reconSpace/matrixSize`` (x is the readout)."""
        return self.recon_size[0], self.recon_size[1]


def _query(root: etree.Element, path: list[str]) -> str:
    expr = "." + "".join(f"//ismrmrd:{el}" for el in path)
    node = root.find(expr, {"ismrmrd": ISMRMRD_NS})
    if node is None or node.text is None:
        raise HeaderError(f"header has no {'/'.join(path)}")
    return node.text


def parse_header(xml: bytes | str) -> Header:
    """Parse an ISMRMRD header the way fastMRI does; raises ``HeaderError`` if it cannot."""
    try:
        root = etree.fromstring(xml)
    except etree.ParseError as exc:
        raise HeaderError(f"header is not valid XML ({exc})") from exc
    try:
        enc = ["encoding", "encodedSpace", "matrixSize"]
        rec = ["encoding", "reconSpace", "matrixSize"]
        lims = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
        encoded = tuple(int(_query(root, enc + [a])) for a in "xyz")
        recon = tuple(int(_query(root, rec + [a])) for a in "xyz")
        center = int(_query(root, lims + ["center"]))
        maximum = int(_query(root, lims + ["maximum"])) + 1
    except ValueError as exc:
        if isinstance(exc, HeaderError):
            raise
        raise HeaderError(f"header has a non-integer size ({exc})") from exc
    return Header(encoded, recon, center, maximum)  # type: ignore[arg-type]


def make_header_xml(
    encoded_size: tuple[int, int],
    recon_size: tuple[int, int],
    sampled_cols: tuple[int, int] | None = None,
    field_strength_t: float = 3.0,
    system_model: str = "mrirecon synthetic",
) -> bytes:
    """A minimal ISMRMRD header for a k-space of ``encoded_size`` (readout, phase-encode).

    ``sampled_cols = (first, last_exclusive)`` are the acquired phase-encode columns; the
    rest is zero padding. ``center``/``maximum`` are written so that fastMRI's padding
    formula gives back exactly ``sampled_cols``.
    """
    ex, ey = encoded_size
    rx, ry = recon_size
    first, stop = sampled_cols if sampled_cols is not None else (0, ey)
    center = ey // 2 - first
    maximum = stop - first - 1
    return f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="{ISMRMRD_NS}">
  <acquisitionSystemInformation>
    <systemVendor>mrirecon</systemVendor>
    <systemModel>{system_model}</systemModel>
    <systemFieldStrength_T>{field_strength_t}</systemFieldStrength_T>
  </acquisitionSystemInformation>
  <encoding>
    <encodedSpace>
      <matrixSize><x>{ex}</x><y>{ey}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{2 * 140.0 * ex / max(ex, 1) :.1f}</x><y>140.0</y><z>3.0</z></fieldOfView_mm>
    </encodedSpace>
    <reconSpace>
      <matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>140.0</x><y>140.0</y><z>3.0</z></fieldOfView_mm>
    </reconSpace>
    <trajectory>cartesian</trajectory>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum><center>{center}</center></kspace_encoding_step_1>
      <kspace_encoding_step_2><minimum>0</minimum><maximum>0</maximum><center>0</center></kspace_encoding_step_2>
      <slice><minimum>0</minimum><maximum>0</maximum><center>0</center></slice>
    </encodingLimits>
  </encoding>
</ismrmrdHeader>
""".encode()
