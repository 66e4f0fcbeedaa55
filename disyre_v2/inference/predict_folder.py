"""Predict every case of a folder: sharding, --continue, atomic writes, volume_scores.csv."""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.dataset.layout import case_ids_in, channel_file_name
from disyre_v2.imageio.atomic import atomic_path, remove_stale_temporaries
from disyre_v2.imageio.writer import write_float_map
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.inference.volume_score import volume_score
from disyre_v2.preprocessing.inverse import raw_geometry

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"
SCORES_FILE = "volume_scores.csv"


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
                   num_parts: int = 1, part_id: int = 0) -> list[Path]:
    """Write ``OUT/CASE.nii.gz`` for this part's cases; returns the maps written."""
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    masks = Path(masks_folder) if masks_folder is not None else default_masks_folder(input_folder)
    cases = shard(find_input_cases(input_folder, len(predictor.plans["channel_names"]), masks), num_parts, part_id)
    output_folder.mkdir(parents=True, exist_ok=True)
    # A map (or sidecar) half-written when an earlier run was killed: its temporary goes now.
    for stale in remove_stale_temporaries(output_folder, recursive=True):
        logger.info("Removed %s, left by an interrupted run.", stale)
    written = []
    for case_id, files, mask in tqdm(cases, desc="predicting", unit="case"):
        target = output_folder / f"{case_id}{FILE_ENDING}"
        if resume and target.is_file() and (output_folder / f".{case_id}.json").is_file():
            continue
        anomaly_map, restoration, properties = predictor.predict_case(files, mask, save_restorations)
        geometry = raw_geometry(properties)
        if restoration is not None:
            for c, channel in enumerate(restoration):
                write_float_map(channel, geometry, output_folder / "restorations" / channel_file_name(case_id, c, FILE_ENDING))
        write_float_map(anomaly_map, geometry, target)
        # Per-case sidecar, so parts running side by side never write one shared file at once.
        write_json_atomic({"case_id": case_id, "volume_score": volume_score(anomaly_map, properties["raw_mask"]),
                           "score": predictor.score, "levels": predictor.levels,
                           "models": [str(m.run_folder) for m in predictor.models]},
                          output_folder / f".{case_id}.json")
        written.append(target)
    write_volume_scores(output_folder)
    return written


def write_volume_scores(output_folder: Path) -> Path:
    """``volume_scores.csv`` (case_id, volume_score) from every case predicted so far."""
    rows = [json.loads(p.read_text()) for p in sorted(output_folder.glob(".*.json"))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case_id", "volume_score"])
    for row in sorted(rows, key=lambda r: r["case_id"]):
        writer.writerow([row["case_id"], f"{row['volume_score']:.8g}"])
    path = output_folder / SCORES_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())
    return path
