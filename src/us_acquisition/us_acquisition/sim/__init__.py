"""Pure-numpy tracked-probe ultrasound simulator (no ROS imports).

* :mod:`.phantom` -- procedural neck phantom (:class:`NeckPhantom`, :class:`Tissue`).
* :mod:`.bmode` -- B-mode image formation (:class:`BModeSimulator`, :class:`SimFrame`).
* :mod:`.motion` -- probe trajectories and tracker / frame sampling (:class:`ProbeTrajectory`).
* :mod:`.dataset` -- sweep ``.npz`` writer and the dataset CLI.

See ``docs/simulator.md`` for the model and all conventions.
"""

from .bmode import BModeParams, BModeSimulator, SimFrame
from .motion import (
    FrameSamples,
    ProbeTrajectory,
    TrackerSamples,
    longitudinal_pose,
    sample_frames,
    sample_tracker,
    transverse_pose,
)
from .phantom import GLAND_LABELS, NeckPhantom, NeckPhantomParams, Tissue, gland_mask

__all__ = [
    "GLAND_LABELS",
    "BModeParams",
    "BModeSimulator",
    "FrameSamples",
    "NeckPhantom",
    "NeckPhantomParams",
    "ProbeTrajectory",
    "SimFrame",
    "Tissue",
    "TrackerSamples",
    "gland_mask",
    "longitudinal_pose",
    "sample_frames",
    "sample_tracker",
    "transverse_pose",
]
