"""Where the MNI152 2009a template files are: inside the installed nilearn package, never downloaded.

The default registration template of preparation and the anatomy of the synthetic benchmark.
"""
from __future__ import annotations

from pathlib import Path

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def template_folder() -> Path:
    """The folder inside the installed nilearn package that holds the MNI152 2009a files."""
    try:
        import nilearn
    except ImportError:  # pragma: no cover - nilearn is an install requirement
        raise FileNotFoundError(
            "The synthetic benchmark builds its brains from the MNI152 template that ships with "
            "nilearn, which is not installed. Install it with: pip install nilearn"
        ) from None
    return Path(nilearn.__file__).parent / "datasets" / "data"


def template_paths(folder: Path | None = None) -> dict[str, Path]:
    """Paths of the three template files; a clear error names what is missing and the fix."""
    folder = template_folder() if folder is None else Path(folder)
    paths = {key: folder / name for key, name in TEMPLATE_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"The MNI152 2009a template file(s) {', '.join(missing)} are missing. They ship with the "
            f"nilearn package (no download needed); reinstall it: pip install --force-reinstall nilearn"
        )
    return paths
