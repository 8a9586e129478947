"""Generated fastMRI-format sample scans: a procedural knee-like anatomy seen by a coil array.

``anatomy`` draws the random numbers of one volume, ``phantom`` paints them into images,
``coils`` makes coil sensitivities and noise, ``volume`` assembles the k-space, target,
header and attributes of one file.
"""

from mrirecon.sampledata.volume import PRESETS, Preset, SampleVolume, make_volume

__all__ = ["PRESETS", "Preset", "SampleVolume", "make_volume"]
