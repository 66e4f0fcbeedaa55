"""Preprocess every healthy training case of a raw dataset for the planned configurations."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

from disyre_v2.dataset.dataset_json import load_dataset_json
from disyre_v2.dataset.layout import list_raw_cases
from disyre_v2.plans_access import get_configuration
from disyre_v2.preprocessing.parallel import map_cases
from disyre_v2.preprocessing.preprocessor import preprocess_case, preprocessing_signature
from disyre_v2.preprocessing.store import is_case_complete, remove_temporaries, save_preprocessed_case

logger = logging.getLogger(__name__)


def _preprocess_and_save(job: tuple) -> str:
    case_id, image_paths, mask_path, plans, configuration, folder = job
    data, mask, properties = preprocess_case(image_paths, mask_path, plans, configuration)
    save_preprocessed_case(folder, case_id, data, mask, properties)
    return case_id


def preprocess(raw_dataset_folder: Path | str, preprocessed_dataset_folder: Path | str, plans: dict,
               configurations: Sequence[str], num_workers: int = 1, clean: bool = False,
               progress: bool = True) -> dict[str, dict[str, int]]:
    """Write ``<preprocessed>/<data_identifier>/CASE{.npy,_mask.npy,.json}`` for each configuration.

    Finished cases (same preprocessing signature) are reused unless ``clean``; leftovers of an
    interrupted run are removed. Returns, per configuration, how many cases were written and reused.
    """
    raw = Path(raw_dataset_folder)
    dataset_json = load_dataset_json(raw)
    cases = list_raw_cases(raw, "Tr", dataset_json)
    if not cases:
        raise ValueError(f"{raw / 'imagesTr'} holds no training case: there is nothing to preprocess.")
    summary = {}
    for name in configurations:
        config = get_configuration(plans, name)
        folder = Path(preprocessed_dataset_folder) / config["data_identifier"]
        if clean and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if removed := remove_temporaries(folder):
            logger.info("Removed %d temporary file(s) of an interrupted run in %s.", removed, folder)
        signature = preprocessing_signature(config)
        todo = [case for case in cases if not is_case_complete(folder, case.case_id, signature)]
        reused = len(cases) - len(todo)
        if reused:
            logger.info("%s: reusing %d finished case(s) in %s (pass --clean to redo them).", name, reused, folder)
        jobs = [(c.case_id, c.image_paths, c.mask_path, plans, name, folder) for c in todo]
        map_cases(_preprocess_and_save, jobs, num_workers, desc=f"preprocessing {name}", progress=progress)
        summary[name] = {"written": len(todo), "reused": reused}
        logger.info("%s: %d case(s) preprocessed, %d reused, in %s.", name, len(todo), reused, folder)
    return summary
