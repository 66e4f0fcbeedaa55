"""NIfTI file names: the endings every stage accepts."""
from __future__ import annotations

NIFTI_ENDINGS = (".nii.gz", ".nii")


def nifti_stem(name: str) -> str | None:
    """``"sub-1_T1w"`` for ``"sub-1_T1w.nii.gz"`` or ``".nii"`` (any letter case); None for other files."""
    lower = name.lower()
    for ending in NIFTI_ENDINGS:
        if lower.endswith(ending):
            return name[: -len(ending)]
    return None
