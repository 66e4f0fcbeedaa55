"""Which files belong to each test case: prediction, label, brain mask, images, restorations.

The label folder (-ref) names the cases. A prediction must exist for every one of them. The brain
is, in this order: ``-mask DIR/CASE``; else, when the label folder is called ``labels*`` (such as
``labelsTs``), its sibling ``masks*`` (``masksTs``) if that exists; else any channel > 0 of the
sibling ``images*/CASE_XXXX`` images (the raw format's rule for skull-stripped images); else the
whole grid, with a warning (the map alone cannot tell a zero-score lesion voxel from background).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from disyre_v2.imageio.names import nifti_stem

logger = logging.getLogger(__name__)

RESTORATIONS = "restorations"
SIDE_MAP_SUFFIXES = ("_mask", "_std")
BRAIN_FROM_MASK, BRAIN_FROM_IMAGES, BRAIN_WHOLE_GRID = "mask", "images > 0", "whole grid"


@dataclass
class EvaluationCase:
    case_id: str
    prediction: Path
    label: Path
    mask: Path | None = None
    images: list[Path] = field(default_factory=list)
    restorations: list[Path] = field(default_factory=list)

    @property
    def brain_source(self) -> str:
        if self.mask is not None:
            return BRAIN_FROM_MASK
        return BRAIN_FROM_IMAGES if self.images else BRAIN_WHOLE_GRID


def volumes_in(folder: Path) -> dict[str, Path]:
    """{name without ending: path} of the NIfTI files directly in ``folder`` (hidden files ignored)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = nifti_stem(path.name)
        if stem is None or path.name.startswith(".") or not path.is_file():
            continue
        if stem in found:
            raise ValueError(f"{folder} holds both {found[stem].name} and {path.name}; keep one of them.")
        found[stem] = path
    return found


def channel_files(folder: Path, case_id: str) -> list[Path]:
    """CASE_0000, CASE_0001, ... in channel order (empty when the folder or files are absent)."""
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(case_id) + r"_(\d{4})$")
    channels = {}
    for stem, path in volumes_in(folder).items():
        match = pattern.match(stem)
        if match:
            channels[int(match.group(1))] = path
    return [channels[i] for i in sorted(channels)]


def _require_folder(folder: Path | str, flag: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{flag} {folder} is not a folder.")
    return folder


def _sibling(reference: Path, prefix: str) -> Path | None:
    """``labelsTs`` -> ``../masksTs`` (or ``../imagesTs``); None when the label folder has another name."""
    if not reference.name.startswith("labels"):
        return None
    sibling = reference.parent / (prefix + reference.name[len("labels"):])
    return sibling if sibling.is_dir() else None


def _missing(what: str, cases: list[str], folder: Path, hint: str) -> ValueError:
    listed = ", ".join(cases[:10]) + (f" and {len(cases) - 10} more" if len(cases) > 10 else "")
    return ValueError(f"No {what} for case(s) {listed} in {folder} (expected {folder / (cases[0] + '.nii.gz')}). {hint}")


def prediction_files(prediction_dirs: Sequence[Path]) -> dict[str, Path]:
    """{case: map} over one or several prediction folders (the parts of a sharded prediction); a case
    predicted in two folders is an error, since it could be scored twice."""
    found: dict[str, Path] = {}
    for folder in prediction_dirs:
        for stem, path in volumes_in(folder).items():
            if stem in found:
                raise ValueError(f"case {stem} is predicted in two -pred folders ({found[stem]} and {path}); give "
                                 f"each case's map once.")
            found[stem] = path
    return found


def find_cases(prediction_dir: Path | str | Sequence[Path | str], reference_dir: Path | str,
               mask_dir: Path | str | None = None) -> list[EvaluationCase]:
    """Pair every label with its prediction (in one folder or across several), brain mask, images and
    restorations; errors name the case."""
    dirs = [prediction_dir] if isinstance(prediction_dir, (str, Path)) else list(prediction_dir)
    prediction_dirs = [_require_folder(folder, "-pred") for folder in dirs]
    predictions_folder = prediction_dirs[0]
    reference = _require_folder(reference_dir, "-ref")
    labels = volumes_in(reference)
    if not labels:
        raise FileNotFoundError(f"{reference} holds no label file (CASE.nii.gz, > 0 anomalous); point -ref at a "
                                f"folder such as $DISYRE_raw/DatasetNNN_Name/labelsTs.")
    predictions = prediction_files(prediction_dirs)
    missing = [case for case in labels if case not in predictions]
    if missing:
        raise _missing("prediction", missing, predictions_folder if len(prediction_dirs) == 1 else
                       Path(", ".join(str(d) for d in prediction_dirs)),
                       "Predict every test case (disyre_v2_predict), or evaluate against a label folder holding "
                       "only the predicted cases.")
    # Beside each map, predict may write CASE_mask (--binary) and CASE_std (--save_uncertainty).
    beside = {f"{case}{suffix}" for case in labels for suffix in SIDE_MAP_SUFFIXES}
    extra = sorted(set(predictions) - set(labels) - beside)
    if extra:
        logger.warning("%d prediction(s) have no label in %s and are ignored: %s", len(extra), reference,
                       ", ".join(extra[:10]))

    masks_folder = _require_folder(mask_dir, "-mask") if mask_dir is not None else _sibling(reference, "masks")
    masks = volumes_in(masks_folder) if masks_folder is not None else {}
    if masks_folder is not None:
        missing = [case for case in labels if case not in masks]
        if missing:
            raise _missing("brain mask", missing, masks_folder,
                           "Give -mask a folder with a mask for every case (CASE.nii.gz, > 0 is brain).")
    images_folder = _sibling(reference, "images")

    cases = []
    for case_id, label in labels.items():
        cases.append(EvaluationCase(
            case_id=case_id, prediction=predictions[case_id], label=label, mask=masks.get(case_id),
            images=channel_files(images_folder, case_id) if images_folder is not None else [],
            restorations=channel_files(predictions[case_id].parent / RESTORATIONS, case_id),
        ))
    whole = [case.case_id for case in cases if case.brain_source == BRAIN_WHOLE_GRID]
    if whole:
        logger.warning("No brain mask and no images for %d case(s) (e.g. %s): every voxel of the grid counts as "
                       "brain. Pass -mask DIR for metrics over the brain only.", len(whole), whole[0])
    return cases
