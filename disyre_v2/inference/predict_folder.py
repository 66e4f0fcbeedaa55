"""Predict every case of a folder: sharding, --continue, atomic writes, volume_scores.csv, maps in native space."""
from __future__ import annotations

import csv
import io
import json
import logging
from collections import deque
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.dataset.layout import case_ids_in, channel_file_name
from disyre_v2.imageio.atomic import atomic_path, remove_stale_temporaries
from disyre_v2.imageio.writer import write_float_map, write_mask
from disyre_v2.processes.background import background_pool
from disyre_v2.inference.decisions import BinaryDecision, mask_name, read_sidecars, write_lesions_csv
from disyre_v2.inference.native_space import NATIVE_FOLDER, NativeSpace, load_native_spaces
from disyre_v2.inference.postprocessing import median_filter_map
from disyre_v2.inference.predictor import DisyrePredictor, PreparedCase, export_case, prepare_case
from disyre_v2.inference.volume_score import volume_score
from disyre_v2.preprocessing.inverse import raw_geometry

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"
SCORES_FILE = "volume_scores.csv"
UNCERTAINTY_SUFFIX = "_std"


def find_input_cases(input_folder: Path, num_channels: int, masks_folder: Path | None) -> list[tuple[str, list[Path], Path | None]]:
    """(case, channel files, mask or None) for every case; a missing channel is an error naming the case."""
    if not input_folder.is_dir():
        raise FileNotFoundError(f"{input_folder} is not a folder; -i must name a folder of CASE_0000.nii.gz files.")
    ending = FILE_ENDING if any(p.name.endswith(FILE_ENDING) for p in input_folder.iterdir()) else ".nii"
    cases = []
    for case_id in case_ids_in(input_folder, ending):
        files = [input_folder / channel_file_name(case_id, c, ending) for c in range(num_channels)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"case {case_id}: channel file(s) {', '.join(missing)} missing in {input_folder}; "
                                    f"the model expects {num_channels} channel(s).")
        extra = input_folder / channel_file_name(case_id, num_channels, ending)
        if extra.is_file():
            raise ValueError(f"case {case_id}: {extra.name} exists but the model was trained on {num_channels} "
                             f"channel(s); give exactly the channels of the training data.")
        mask = None
        if masks_folder is not None:
            mask = masks_folder / f"{case_id}{ending}"
            if not mask.is_file():
                raise FileNotFoundError(f"case {case_id}: no brain mask {mask}.")
        cases.append((case_id, files, mask))
    if not cases:
        raise FileNotFoundError(f"No CASE_0000{ending} file in {input_folder}.")
    return cases


def default_masks_folder(input_folder: Path) -> Path | None:
    """``masksTs`` next to ``imagesTs`` (the raw layout), when it exists."""
    if input_folder.name.startswith("images"):
        sibling = input_folder.parent / ("masks" + input_folder.name[len("images"):])
        if sibling.is_dir():
            return sibling
    return None


def shard(items: Sequence, num_parts: int, part_id: int) -> list:
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise ValueError(f"--part_id must lie in 0..{num_parts - 1} for --num_parts {num_parts}, got {part_id}.")
    return list(items[part_id::num_parts])


def predict_folder(predictor: DisyrePredictor, input_folder: Path | str, output_folder: Path | str, *,
                   masks_folder: Path | str | None = None, save_restorations: bool = False, resume: bool = False,
                   num_parts: int = 1, part_id: int = 0, num_workers: int = 0,
                   native_space: Path | str | None = None, decision: BinaryDecision | None = None,
                   save_uncertainty: bool = False) -> list[Path]:
    """Write ``OUT/CASE.nii.gz`` for this part's cases; returns the maps written.

    With ``native_space`` (the output folder of disyre_v2_prepare), each map is also written on the
    case's original scan grid, ``OUT/native/CASE.nii.gz``.

    With ``num_workers`` > 0, that many background processes read and preprocess the next cases and
    resample and write the finished maps while this process scores (nnU-Net's predictor does the
    same): the accelerator waits on neither. At most ``num_workers`` + 1 prepared cases and
    ``num_workers`` finished maps wait at any time, so memory stays bounded.

    With ``decision`` (--binary), each map also gets ``OUT/CASE_mask.nii.gz`` (and its native copy),
    its lesions in ``OUT/lesions.csv`` and its calibrated p-value and flag in ``volume_scores.csv``.
    With ``save_uncertainty``, ``OUT/CASE_std.nii.gz`` (DisyrePredictor.score_volume's spread)."""
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    masks = Path(masks_folder) if masks_folder is not None else default_masks_folder(input_folder)
    cases = shard(find_input_cases(input_folder, len(predictor.plans["channel_names"]), masks), num_parts, part_id)
    spaces = load_native_spaces(native_space, [case[0] for case in cases]) if native_space is not None else {}
    output_folder.mkdir(parents=True, exist_ok=True)
    # A map (or sidecar) half-written when an earlier run was killed: its temporary goes now.
    for stale in remove_stale_temporaries(output_folder, recursive=True):
        logger.info("Removed %s, left by an interrupted run.", stale)
    todo = [case for case in cases if not (resume and is_complete(output_folder, case[0], bool(spaces), decision)
                                           and (not save_uncertainty or uncertainty_path(output_folder, case[0]).is_file()))]
    sidecar = predictor.describe()
    written: list[Path] = []
    with background_pool(num_workers) as pool, tqdm(total=len(todo), desc="predicting", unit="case") as bar:
        upcoming = iter(todo)
        prepared: deque = deque()
        exporting: deque = deque()

        def prepare_next() -> None:
            case = next(upcoming, None)
            if case is not None:
                case_id, files, mask = case
                prepared.append((case_id, pool.submit(prepare_case, predictor.plans, predictor.configuration,
                                                      files, mask)))

        def finish_oldest_export() -> None:
            written.append(exporting.popleft().result())
            bar.update(1)

        for _ in range(num_workers + 1 if num_workers else 1):
            prepare_next()
        while prepared:
            case_id, future = prepared.popleft()
            case = future.result()
            if num_workers:
                prepare_next()  # the workers prepare it while this process scores
            # The median filter: on an accelerator in torch before the map leaves it; on the CPU with
            # scipy in the export stage (in -np's workers if any).
            on_device = bool(getattr(predictor, "filters_on_device", False))
            uncertainty = None
            if save_uncertainty:
                anomaly_map, restoration, uncertainty = predictor.score_volume(
                    case.data, case.mask, save_restorations, filtered=on_device, with_uncertainty=True)
            else:
                anomaly_map, restoration = predictor.predict_preprocessed(case.data, case.mask, save_restorations,
                                                                          filtered=on_device)
            case.data = None  # the export needs only the geometry and masks
            exporting.append(pool.submit(export_and_write, anomaly_map, restoration, case, output_folder, case_id,
                                         sidecar, 0 if on_device else predictor.median_filter_size,
                                         spaces.get(case_id), decision, uncertainty))
            if not num_workers:
                prepare_next()  # in this process: one case in memory at a time
            while len(exporting) > num_workers:
                finish_oldest_export()
        while exporting:
            finish_oldest_export()
    sidecars = read_sidecars(output_folder)  # every case predicted so far, by this part or others
    write_volume_scores(output_folder, sidecars)
    if decision is not None:
        write_lesions_csv(output_folder, sidecars)
    return written


def is_complete(output_folder: Path, case_id: str, native: bool, decision: BinaryDecision | None) -> bool:
    """Whether --continue may skip the case: every file this run would write exists, and a binary
    output was made with this run's decision."""
    sidecar_path = output_folder / f".{case_id}.json"
    if not ((output_folder / f"{case_id}{FILE_ENDING}").is_file() and sidecar_path.is_file()):
        return False
    if native and not native_map_path(output_folder, case_id).is_file():
        return False
    if decision is None:
        return True
    if not (output_folder / mask_name(case_id, FILE_ENDING)).is_file():
        return False
    if native and not (output_folder / NATIVE_FOLDER / mask_name(case_id, FILE_ENDING)).is_file():
        return False
    return json.loads(sidecar_path.read_text()).get("binary") == decision.record()


def export_and_write(anomaly_map: np.ndarray, restoration: np.ndarray | None, case: PreparedCase,
                     output_folder: Path, case_id: str, sidecar: dict, median_filter_size: int = 0,
                     native: NativeSpace | None = None, decision: BinaryDecision | None = None,
                     uncertainty: np.ndarray | None = None) -> Path:
    """Median-filter a scored case's map, bring it back to its input grid and write the map,
    restorations and sidecar (all CPU work: it runs in a background process with -np)."""
    anomaly_map = median_filter_map(anomaly_map, case.mask, median_filter_size)
    raw_map, raw_restoration, properties = export_case(anomaly_map, restoration, case)
    geometry = raw_geometry(properties)
    if uncertainty is not None:  # exported like the map: onto the input grid, 0 outside its brain
        write_float_map(export_case(uncertainty, None, case)[0], geometry, uncertainty_path(output_folder, case_id))
    target = output_folder / f"{case_id}{FILE_ENDING}"
    if raw_restoration is not None:
        for c, channel in enumerate(raw_restoration):
            write_float_map(channel, geometry, output_folder / "restorations" / channel_file_name(case_id, c, FILE_ENDING))
    if native is not None:
        with atomic_path(native_map_path(output_folder, case_id), FILE_ENDING) as tmp:
            sitk.WriteImage(native.resample_map(raw_map, properties["raw_mask"], geometry), str(tmp), True)
    score = volume_score(raw_map, properties["raw_mask"])
    decided = {}
    if decision is not None:
        mask, decided = decision.apply(raw_map, properties["raw_mask"], geometry, case_id, score)
        write_mask(mask, geometry, output_folder / mask_name(case_id, FILE_ENDING))
        if native is not None:
            with atomic_path(output_folder / NATIVE_FOLDER / mask_name(case_id, FILE_ENDING), FILE_ENDING) as tmp:
                sitk.WriteImage(sitk.Cast(native.resample(mask, geometry, labels=True), sitk.sitkUInt8), str(tmp), True)
    write_float_map(raw_map, geometry, target)
    # Per-case sidecar, so parts running side by side never write one shared file at once.
    write_json_atomic({"case_id": case_id, "volume_score": score, **sidecar, **decided}, output_folder / f".{case_id}.json")
    return target


def uncertainty_path(output_folder: Path, case_id: str) -> Path:
    return output_folder / f"{case_id}{UNCERTAINTY_SUFFIX}{FILE_ENDING}"


def native_map_path(output_folder: Path, case_id: str) -> Path:
    return output_folder / NATIVE_FOLDER / f"{case_id}{FILE_ENDING}"


def write_volume_scores(output_folder: Path, sidecars: list[dict] | None = None) -> Path:
    """``volume_scores.csv`` (case_id, volume_score) from every case predicted so far; with --binary
    also each volume's calibrated p-value and whether it is flagged (empty for cases without)."""
    rows = read_sidecars(output_folder) if sidecars is None else sidecars
    binary = any("volume_p_value" in row for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case_id", "volume_score"] + (["p_value", "flagged"] if binary else []))
    for row in sorted(rows, key=lambda r: r["case_id"]):
        extra = []
        if binary:
            extra = ([f"{row['volume_p_value']:.8g}", str(int(row["flagged"]))] if "volume_p_value" in row else ["", ""])
        writer.writerow([row["case_id"], f"{row['volume_score']:.8g}", *extra])
    path = output_folder / SCORES_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())
    return path
