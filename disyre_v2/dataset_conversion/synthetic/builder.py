"""Write a whole synthetic benchmark into the raw layout: healthy training cases and test cases with
ground truth, a sidecar JSON naming each test case's lesion kind, and a PNG montage.

Every case depends only on (seed, split, index, kind, spacing), so the files are byte-identical for
the same seed whatever the number of worker processes.
"""
from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.dataset_conversion.raw_dataset_writer import RawDatasetWriter
from disyre_v2.dataset_conversion.synthetic.acquisition import ACQUISITIONS
from disyre_v2.dataset_conversion.synthetic.anatomy import load_template_anatomy, template_distance_maps
from disyre_v2.dataset_conversion.synthetic.contrast import CHANNELS
from disyre_v2.dataset_conversion.synthetic.generator import HEALTHY, KINDS, CaseSpec, SyntheticCase, generate_case
from disyre_v2.dataset_conversion.synthetic.montage import tile_from_case, write_montage

logger = logging.getLogger(__name__)

DEFAULT_NAME = "Synthetic"
SIDECAR_NAME = "synthetic_cases.json"
MONTAGE_NAME = "synthetic_montage.png"
LABELS = {"background": 0, "lesion_or_tumour_core": 1, "edema": 2, "enhancing_tumour": 4}
MONTAGE_TRAINING_CASES = 3


def plan_cases(n_train: int, n_test: int, kinds: Sequence[str] = KINDS, seed: int = 0, spacing: int = 2,
               lesion_free_fraction: float = 0.2, acquisition: str = "default") -> list[CaseSpec]:
    """Training cases are healthy; test cases cycle through ``kinds``, with every case whose
    index crosses a multiple of 1/lesion_free_fraction left lesion-free (evenly spread)."""
    specs = [CaseSpec(f"synth_tr_{i:04d}", "Tr", i, HEALTHY, seed, spacing, acquisition) for i in range(n_train)]
    lesion_index = 0
    for i in range(n_test):
        if int((i + 1) * lesion_free_fraction + 1e-9) > int(i * lesion_free_fraction + 1e-9):
            kind = HEALTHY
        else:
            kind = kinds[lesion_index % len(kinds)]
            lesion_index += 1
        specs.append(CaseSpec(f"synth_ts_{i:04d}", "Ts", i, kind, seed, spacing, acquisition))
    return specs


def _check_arguments(n_train, n_test, kinds, spacing, seed, num_processes, lesion_free_fraction,
                     acquisition="default") -> None:
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"Unknown --acquisition {acquisition!r}; choose one of {', '.join(ACQUISITIONS)}.")
    if n_train < 0 or n_test < 0:
        raise ValueError(f"--n_train and --n_test cannot be negative (got {n_train} and {n_test}).")
    if n_train + n_test == 0:
        raise ValueError("Nothing to generate: give --n_train and/or --n_test a positive number.")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or (n_test > 0 and not kinds):
        raise ValueError(f"Unknown or missing lesion kind(s) {unknown or '[]'}: --kinds takes one or more of {', '.join(KINDS)}.")
    if spacing not in (1, 2):
        raise ValueError(f"--spacing must be 1 or 2 (mm), got {spacing}.")
    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}.")
    if num_processes < 1:
        raise ValueError(f"-np must be at least 1, got {num_processes}.")
    if not 0.0 <= lesion_free_fraction <= 1.0:
        raise ValueError(f"--lesion_free_fraction must lie in [0, 1], got {lesion_free_fraction}.")


def _cases(specs: list[CaseSpec], num_processes: int):
    """Generated cases in ``specs`` order; worker processes inherit the loaded template."""
    if num_processes == 1 or len(specs) == 1:
        for spec in specs:
            yield generate_case(spec)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(min(num_processes, len(specs))) as pool:
        yield from pool.imap(generate_case, specs, chunksize=1)


def make_synthetic_dataset(dataset_id: int, n_train: int = 30, n_test: int = 20, kinds: Sequence[str] = KINDS,
                           spacing: int = 2, seed: int = 0, num_processes: int = 1, name: str = DEFAULT_NAME,
                           lesion_free_fraction: float = 0.2, overwrite: bool = False,
                           raw_base: Path | str | None = None, montage: bool = True,
                           acquisition: str = "default") -> Path:
    """Generate ``Dataset{ID}_{name}`` under ``raw_base`` (default $DISYRE_raw); returns its folder.
    ``acquisition`` names the scanner settings (``ACQUISITIONS``: default, scanner_b)."""
    kinds = list(dict.fromkeys(kinds))
    _check_arguments(n_train, n_test, kinds, spacing, seed, num_processes, lesion_free_fraction, acquisition)
    specs = plan_cases(n_train, n_test, kinds, seed, spacing, lesion_free_fraction, acquisition)
    load_template_anatomy(spacing)  # once, before the workers fork
    template_distance_maps(spacing)
    description = (f"Synthetic brains built from the MNI152 2009a template shipped with nilearn: healthy "
                   f"training cases and test cases with {', '.join(kinds) or 'no'} lesions. seed {seed}, "
                   f"{spacing} mm, acquisition {acquisition}. Lesion kinds per test case: {SIDECAR_NAME}.")
    sidecar = {"generator": "disyre_v2_make_synthetic_dataset", "seed": seed, "spacing_mm": spacing,
               "kinds": kinds, "lesion_free_fraction": lesion_free_fraction, "acquisition": acquisition,
               "anatomy": "MNI152 2009a symmetric T1, GM and WM maps (nilearn package data)",
               "test_kinds": {}, "cases": {}}
    tiles, shown_kinds = [], set()
    with RawDatasetWriter(dataset_id, name, CHANNELS, overwrite=overwrite, description=description, labels=LABELS,
                          raw_base=raw_base, synthetic={"seed": seed, "spacing_mm": spacing, "sidecar": SIDECAR_NAME}) as writer:
        for case in tqdm(_cases(specs, num_processes), total=len(specs), desc="synthetic cases", unit="case"):
            spec = case.spec
            writer.add_arrays(spec.split, spec.case_id, case.images, case.geometry, mask=case.mask, label=case.label)
            sidecar["cases"][spec.case_id] = {"split": spec.split, **case.info}
            if spec.split == "Ts":
                sidecar["test_kinds"][spec.case_id] = spec.kind
            if montage and _wanted_in_montage(case, shown_kinds):
                tiles.append(tile_from_case(f"{spec.case_id}\n{spec.kind}", case.images, case.mask, case.label))
        write_json_atomic(sidecar, writer.staging / SIDECAR_NAME)
        if tiles:
            write_montage(tiles, writer.staging / MONTAGE_NAME)
    folder = writer.target
    logger.info("Synthetic dataset %s: %d training and %d test cases; lesion kinds in %s%s.", folder, n_train, n_test,
                folder / SIDECAR_NAME, f", montage {folder / MONTAGE_NAME}" if tiles else "")
    return folder


def _wanted_in_montage(case: SyntheticCase, shown_kinds: set) -> bool:
    """The first few training cases and the first test case of each kind."""
    spec = case.spec
    if spec.split == "Tr":
        return spec.index < MONTAGE_TRAINING_CASES
    if spec.kind in shown_kinds:
        return False
    shown_kinds.add(spec.kind)
    return True
