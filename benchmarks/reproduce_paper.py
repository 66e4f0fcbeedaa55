"""Reproduce the DISYRE v2 paper's experiments (MICCAI 2024, Tables 1 and 2) in one resumable command.

    python benchmarks/reproduce_paper.py --camcan DIR --atlas DIR --brats DIR -o WORK \\
        [--steps 100000] [--seeds 0 1 2 3] [--device cuda] [--tables 1 2] [--methods DaeTrainer ...] [--continue]

The paper's setup (documentation/how_to/reproduce_paper.md): one model per modality trained on healthy
CamCAN (T1, T2), tested on ATLAS R2.0 (T1) and BraTS 2020 (T1, T2), all on the SRI24 grid BraTS is
distributed in. Stages, each skipping what is complete (so a killed run resumes with --continue):
preparation of scans not yet on the template (--template), conversion, planning and preprocessing,
a short timed training run (the time estimate), training per method × modality × seed, prediction with
every score the tables need (one per seed, no median filter), evaluation with the paper's protocol
(``disyre``) and the exact one, and the tables as Markdown and JSON, the paper's figures beside ours.

Everything goes under -o: raw/, preprocessed/, results/ (the pipeline's three folders), maps/,
evaluation/, tables/ and state/ (one marker per finished stage).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import SimpleITK as sitk

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.errors import UserError
from disyre_v2.evaluation.paper_tables import TableRow, compare, markdown, write_table
from disyre_v2.run.common import add_common_flags, int_at_least, run_cli

logger = logging.getLogger("reproduce_paper")

# -- the paper ------------------------------------------------------------------------------------------
TABLE_PROTOCOL = "disyre"  # the authors' evaluate.py: 10,000 voxels per volume, 200 thresholds (see the how-to)
PROTOCOLS = (TABLE_PROTOCOL, "exact")
TEST_SETS = (("ATLAS", "T1"), ("BraTS-T1", "T1"), ("BraTS-T2", "T2"))  # (test set, modality of the model)
TABLE1_COLUMNS = [("ATLAS_ap", "ATLAS AP"), ("ATLAS_dice", "ATLAS [Dice]"), ("BraTS-T1_ap", "BraTS-T1 AP"),
                  ("BraTS-T1_dice", "BraTS-T1 [Dice]"), ("BraTS-T2_ap", "BraTS-T2 AP"), ("BraTS-T2_dice", "BraTS-T2 [Dice]")]
TABLE2_COLUMNS = [("ATLAS_ap", "ATLAS AP"), ("BraTS-T1_ap", "BraTS-T1 AP"), ("BraTS-T2_ap", "BraTS-T2 AP")]
NO_PRETRAINED = "needs ImageNet-pretrained weights, which cannot be shipped or downloaded here"


@dataclass(frozen=True)
class Method:
    """A row of a table: the paper's figures (in the table's column order), the trainer that builds it
    (None: cannot be built here, ``why_not`` says why) and the score (None: the trainer's own)."""

    row: str
    paper: tuple[float, ...]
    trainer: str | None
    score: str | None = None
    why_not: str = ""


# Table 1 (AP, [Dice] on ATLAS, BraTS-T1, BraTS-T2), as printed. Adding a comparison method: one line.
TABLE1 = [
    Method("VAE", (0.11, 0.20, 0.13, 0.19, 0.28, 0.33), "VaeTrainer", "residual"),
    Method("r-VAE", (0.09, 0.17, 0.13, 0.19, 0.36, 0.40), "RVaeTrainer", "restoration"),
    Method("FAE", (0.08, 0.18, 0.42, 0.45, 0.51, 0.52), None, why_not=NO_PRETRAINED),
    Method("PaDiM", (0.05, 0.13, 0.21, 0.28, 0.34, 0.38), None, why_not=NO_PRETRAINED),
    Method("CFLOW-AD", (0.04, 0.10, 0.16, 0.24, 0.31, 0.35), None, why_not=NO_PRETRAINED),
    Method("RD", (0.11, 0.22, 0.36, 0.42, 0.47, 0.50), None, why_not=NO_PRETRAINED),
    Method("PII", (0.03, 0.07, 0.13, 0.22, 0.13, 0.22), "PiiTrainer", "segmentation"),
    Method("DAE", (0.05, 0.13, 0.13, 0.20, 0.47, 0.49), "DaeTrainer", "residual"),
    Method("CutPaste", (0.03, 0.06, 0.07, 0.13, 0.22, 0.26), "CutPasteTrainer", "patch_density"),
    Method("MOOD22", (0.10, 0.21, 0.24, 0.31, 0.47, 0.48), "Mood22Trainer", "segmentation"),
    Method("DISYRE (v1)", (0.29, 0.37, 0.34, 0.41, 0.75, 0.70), "DisyreTrainerFPI", "multistep"),
    Method("DISYRE v2", (0.33, 0.45, 0.48, 0.51, 0.79, 0.73), "DisyreTrainer", "ensemble"),
]
ALWAYS_IN_TABLE1 = ("DISYRE (v1)", "DISYRE v2")
# Table 2 (AP, mean of 4 seeds; ATLAS without its problem cases), as printed.
TABLE2 = [
    Method("Ensemble + DAG (DISYRE v2)", (0.47, 0.48, 0.79), "DisyreTrainer", "ensemble"),
    Method("Multi-step + FPI (DISYRE v1)", (0.42, 0.40, 0.73), "DisyreTrainerFPI", "multistep"),
    Method("Multi-step + DAG", (0.47, 0.44, 0.78), "DisyreTrainer", "multistep"),
    Method("Ensemble + FPI", (0.44, 0.46, 0.69), "DisyreTrainerFPI", "ensemble"),
    Method("Unconditional + DAG", (0.40, 0.44, 0.74), "DisyreTrainerUnconditional", "unconditional"),
    Method("Unconditional + FPI", (0.36, 0.44, 0.68), "DisyreTrainerFPIUnconditional", "unconditional"),
]

# -- the work folder ------------------------------------------------------------------------------------
DATASETS = {"CamCAN_T1": 201, "CamCAN_T2": 202, "ATLAS": 203, "BraTS2020_T1": 204, "BraTS2020_T2": 205}
TEST_DATASET = {"ATLAS": "ATLAS", "BraTS-T1": "BraTS2020_T1", "BraTS-T2": "BraTS2020_T2"}
# Settings a continued run must share with the run it continues (the others may change between calls).
FIXED_SETTINGS = ("camcan", "atlas", "brats", "template", "camcan_validation", "configuration", "steps",
                  "deterministic", "atlas_exclude_ids", "plans_override")

# Called with (stage, key) after every finished unit of work; tests replace it to simulate a kill.
STAGE_HOOK: Callable[[str, str], None] = lambda stage, key: None


def dataset_name(key: str) -> str:
    return f"Dataset{DATASETS[key]:03d}_{key}"


class Work:
    """Paths under -o and the stage markers in state/."""

    def __init__(self, root: Path):
        self.root = root
        self.raw, self.preprocessed, self.results = root / "raw", root / "preprocessed", root / "results"
        self.state, self.tables = root / "state", root / "tables"

    def done(self, key: str) -> bool:
        return (self.state / f"{key}.done").is_file()

    def mark(self, stage: str, key: str) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / f"{key}.done").write_text(time.strftime("%Y-%m-%d %H:%M:%S") + "\n")
        STAGE_HOOK(stage, key)

    def use_environment(self) -> None:
        for variable, folder in (("DISYRE_raw", self.raw), ("DISYRE_preprocessed", self.preprocessed),
                                 ("DISYRE_results", self.results)):
            folder.mkdir(parents=True, exist_ok=True)
            os.environ[variable] = str(folder)

    def maps(self, test_set: str, trainer: str, score: str, seed: int) -> Path:
        return self.root / "maps" / test_set / f"{trainer}__{score}" / f"seed_{seed}"

    def evaluation(self, test_set: str, trainer: str, score: str, seed: int, protocol: str, subset: str = "") -> Path:
        return (self.root / "evaluation" / test_set / f"{trainer}__{score}" / f"seed_{seed}"
                / f"{protocol}{'_' + subset if subset else ''}.json")


# -- checks before anything is written -----------------------------------------------------------------
def available_trainers() -> set[str]:
    from disyre_v2.training.trainer.registry import trainer_names

    return set(trainer_names())


def selected_methods(requested: Sequence[str]) -> list[Method]:
    """Table 1's rows to run besides the DISYRE rows: by trainer name or row name; unknown names refused."""
    chosen = []
    for name in requested:
        match = [m for m in TABLE1 if name in (m.trainer, m.row) or name.lower() == m.row.lower()]
        if not match:
            known = ", ".join(f"{m.trainer} ({m.row})" if m.trainer else m.row for m in TABLE1)
            raise UserError(f"unknown method {name!r} in --methods", fix=f"choose among {known}")
        chosen.extend(m for m in match if m not in chosen)
    return chosen


def atlas_case_ids(root: Path) -> list[str]:
    from disyre_v2.dataset_conversion.atlas import plan_atlas

    return [case.case_id for case in plan_atlas(root, skip_incomplete=True)]


def _atlas_entry_matches(entry: str, case_id: str) -> bool:
    subject = case_id.split("_ses-")[0]
    return entry in (case_id, subject, subject.removeprefix("sub-"))


def read_atlas_exclusions(path: Path, case_ids: Sequence[str]) -> list[str]:
    """The case ids the file names (``sub-r001s001``, ``r001s001`` or ``sub-r001s001_ses-1``, one per
    line, ``#`` comments); an entry naming no ATLAS case is refused (a wrong list, not a typo to skip)."""
    from disyre_v2.dataset_conversion.conversion_plan import read_id_list

    if not path.is_file():
        raise UserError("the --atlas_exclude file does not exist", path, "give a text file of ATLAS ids, one per line")
    entries = read_id_list(path, "--atlas_exclude")
    unknown = [e for e in entries if not any(_atlas_entry_matches(e, c) for c in case_ids)]
    if unknown:
        raise UserError(f"{len(unknown)} id(s) of --atlas_exclude name no ATLAS case found under --atlas "
                        f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''})", path,
                        "use ids such as sub-r001s001, r001s001 or sub-r001s001_ses-1 of the Training subjects")
    return sorted(c for c in case_ids if any(_atlas_entry_matches(e, c) for e in entries))


def check_inputs(args: argparse.Namespace) -> dict:
    """Every refusal that can be made before writing: folders, template, exclusion list, methods, -o."""
    for flag in ("camcan", "atlas", "brats"):
        folder = getattr(args, flag)
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise UserError(f"the --{flag} folder {what}", folder, f"give the folder of the {flag} download")
    if args.plans_override is not None and not args.plans_override.is_file():
        raise UserError("the --plans_override file does not exist", args.plans_override)
    if args.template is not None and not args.template.is_file():
        raise UserError("the --template file does not exist", args.template,
                        "give the SRI24 T1 brain template (see documentation/how_to/reproduce_paper.md)")
    methods = selected_methods(args.methods)
    excluded: list[str] = []
    if args.atlas_exclude is not None:
        excluded = read_atlas_exclusions(args.atlas_exclude, atlas_case_ids(args.atlas))
    if args.output.is_file():
        raise UserError(f"-o {args.output} is a file; give a folder")
    settings = {"camcan": str(args.camcan.resolve()), "atlas": str(args.atlas.resolve()), "brats": str(args.brats.resolve()),
                "template": str(args.template.resolve()) if args.template else None,
                "camcan_validation": str(args.camcan_validation.resolve()) if args.camcan_validation else None,
                "configuration": args.configuration, "steps": args.steps, "deterministic": args.deterministic,
                "atlas_exclude": str(args.atlas_exclude.resolve()) if args.atlas_exclude else None,
                "atlas_exclude_ids": hashlib.sha256("\n".join(excluded).encode()).hexdigest() if excluded else None,
                "plans_override": args.plans_override.read_text() if args.plans_override else None,
                "seeds": args.seeds, "tables": args.tables, "methods": [m.row for m in methods], "device": args.device}
    recorded = args.output / "options.json"
    if recorded.is_file():
        if not args.resume:
            raise UserError(f"-o {args.output} holds an earlier run", recorded,
                            "pass --continue to resume it, or give a new -o folder")
        before = json.loads(recorded.read_text())
        changed = [k for k in FIXED_SETTINGS if before.get(k) != settings.get(k)]
        if changed:
            raise UserError(f"--continue with other settings than the run in -o ({', '.join(changed)})", recorded,
                            "continue with the same flags, or start a new -o folder")
    return {"settings": settings, "methods": methods, "excluded": excluded}


# -- conversion and preparation -----------------------------------------------------------------------
def preparation_options(template: Path | None, what: str):
    from disyre_v2.preparation.prepare_folder import PreparationOptions

    if template is None:
        raise UserError(f"{what} are not on the template yet and need preparation (skull stripping with ROBEX, "
                        "affine registration), which needs the template BraTS lives in",
                        fix="pass --template SRI24_T1_BRAIN.nii.gz (documentation/how_to/reproduce_paper.md says "
                        "where to get it), or give skull-stripped, registered *_stripped_registered copies")
    return PreparationOptions(template=str(template), skull_strip="robex")


def convert_all(args: argparse.Namespace, work: Work) -> dict:
    """The five datasets; returns what was done to each (for the tables' notes)."""
    from disyre_v2.dataset_conversion.atlas import convert_atlas
    from disyre_v2.dataset_conversion.brats2020 import convert_brats2020
    from disyre_v2.dataset_conversion.camcan import RawScansOnlyError, convert_camcan, plan_camcan

    record_path = work.state / "conversion.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for modality in ("T1", "T2"):
        key = f"CamCAN_{modality}"
        if work.done(f"convert_{key}"):
            continue
        try:
            plan_camcan(args.camcan, [modality], skip_incomplete=True)
            preparation = None
        except RawScansOnlyError:
            preparation = preparation_options(args.template, "CamCAN's scans")
        if not (work.raw / dataset_name(key) / "dataset.json").is_file():
            if preparation is None:
                logger.info("Converting CamCAN %s", modality)
                convert_camcan(args.camcan, DATASETS[key], modalities=[modality], name=key, skip_incomplete=True,
                               validation_list=args.camcan_validation, num_processes=args.num_processes)
            else:
                camcan_channel_dataset(args, work, modality, preparation, convert_camcan)
        record[key] = (PREPARED_CAMCAN[modality] if preparation else "skull-stripped, registered copies")
        write_json_atomic(record, record_path)
        work.mark("convert", f"convert_{key}")
    for modality in ("t1", "t2"):
        key = f"BraTS2020_{modality.upper()}"
        if work.done(f"convert_{key}"):
            continue
        if not (work.raw / dataset_name(key) / "dataset.json").is_file():
            logger.info("Converting BraTS 2020 %s", modality)
            convert_brats2020(args.brats, DATASETS[key], modalities=[modality], name=key)
        record[key] = "as distributed (skull-stripped, on SRI24)"
        write_json_atomic(record, record_path)
        work.mark("convert", f"convert_{key}")
    if not work.done("convert_ATLAS"):
        record["ATLAS"] = convert_atlas_dataset(args, work, convert_atlas)
        write_json_atomic(record, record_path)
        work.mark("convert", "convert_ATLAS")
    return record


# What the tables' notes say of raw CamCAN prepared here.
PREPARED_CAMCAN = {"T1": "prepared onto --template (ROBEX, affine)",
                   "T2": "prepared onto --template with each subject's T1 (ROBEX's T1 brain, the T2 moved rigidly "
                         "onto the T1, then by the T1's affine)"}


def camcan_channel_dataset(args: argparse.Namespace, work: Work, modality: str, preparation, convert_camcan) -> None:
    """One modality's dataset from raw CamCAN, prepared as the UPD setup does: T1 and T2 of a subject
    together, ROBEX on the T1, the T1 registered affinely to the template, the T2 stripped with the
    T1's brain and carried by the T1's transform (after a rigid T2 → T1 registration for head motion).
    A T2 registered to the T1 template on its own would depend on cross-contrast mutual information
    alone. The two-channel dataset is prepared once, in a staging folder, and split by channel."""
    from disyre_v2.dataset.dataset_json import load_dataset_json
    from disyre_v2.dataset.layout import list_raw_cases
    from disyre_v2.dataset_conversion.raw_dataset_writer import RawDatasetWriter

    staging = work.root / "staging_camcan"
    both = staging / f"Dataset{DATASETS['CamCAN_T1']:03d}_CamCAN_T1_T2"
    if not (both / "dataset.json").is_file():
        logger.info("Preparing raw CamCAN T1 and T2 onto the template (ROBEX on the T1, affine registration)")
        convert_camcan(args.camcan, DATASETS["CamCAN_T1"], modalities=["T1", "T2"], name="CamCAN_T1_T2",
                       skip_incomplete=True, validation_list=args.camcan_validation, preparation=preparation,
                       raw_base=staging, num_processes=args.num_processes)
    info = load_dataset_json(both)
    channel = ["T1", "T2"].index(modality)
    key = f"CamCAN_{modality}"
    extra = {k: info[k] for k in ("validationCases", "preparation") if k in info}
    with RawDatasetWriter(DATASETS[key], key, [modality], raw_base=work.raw, overwrite=True,
                          description=f"{info.get('description', '')} Channel {modality} of {both.name}.",
                          **extra) as writer:
        for split, add in (("Tr", writer.add_training_case), ("Ts", writer.add_test_case)):
            for case in list_raw_cases(both, split, info):
                add(case.case_id, [case.image_paths[channel]], mask_file=case.mask_path)
    if all((work.raw / dataset_name(f"CamCAN_{m}") / "dataset.json").is_file() for m in ("T1", "T2")):
        shutil.rmtree(staging, ignore_errors=True)


def convert_atlas_dataset(args: argparse.Namespace, work: Work, convert_atlas) -> str:
    """ATLAS with *_stripped_registered derivatives converts directly; the release's whole-head MNI152
    T1s are converted to a staging dataset, then prepared onto the template (labels moved along)."""
    from disyre_v2.dataset_conversion.atlas import CASE_KEY, DERIVATIVE_SUFFIX
    from disyre_v2.dataset_conversion.file_search import find_by_suffix, index_niftis
    from disyre_v2.preparation.prepare_dataset import prepare_dataset

    target = work.raw / dataset_name("ATLAS")
    if find_by_suffix(index_niftis(args.atlas), DERIVATIVE_SUFFIX, CASE_KEY):
        if not (target / "dataset.json").is_file():
            convert_atlas(args.atlas, DATASETS["ATLAS"], name="ATLAS", skip_incomplete=True)
        return "skull-stripped, registered copies"
    options = preparation_options(args.template, "ATLAS's whole-head T1 scans")
    staging = work.root / "staging"
    if not (staging / dataset_name("ATLAS") / "dataset.json").is_file():
        convert_atlas(args.atlas, DATASETS["ATLAS"], name="ATLAS", skip_incomplete=True, raw_base=staging)
    # The conversion's brain masks of whole heads are every voxel above 0: the head. Preparation would take
    # them as given masks (a given mask wins over skull stripping) and refuse a "brain" of 7× the
    # template's; without them ROBEX finds the brain.
    shutil.rmtree(staging / dataset_name("ATLAS") / "masksTs", ignore_errors=True)
    logger.info("Preparing ATLAS onto the template (ROBEX, affine registration; --continue resumes per case)")
    prepare_dataset(staging / dataset_name("ATLAS"), target, options, num_processes=args.num_processes, resume=True)
    shutil.rmtree(staging, ignore_errors=True)
    return "prepared onto --template (ROBEX, affine), lesion masks moved along"


def check_template_grid(args: argparse.Namespace, work: Work) -> None:
    """The template must be the grid BraTS lives on: warn when its size or spacing differ."""
    if args.template is None:
        return
    images = sorted((work.raw / dataset_name("BraTS2020_T1") / "imagesTs").glob("*.nii.gz"))
    if not images:
        return
    template, brats = sitk.ReadImage(str(args.template)), sitk.ReadImage(str(images[0]))
    if template.GetSize() != brats.GetSize() or any(abs(a - b) > 1e-3 for a, b in zip(template.GetSpacing(), brats.GetSpacing())):
        logger.warning("--template %s has size %s and spacing %s, BraTS %s and %s: the paper's setup puts every "
                       "dataset on BraTS's SRI24 grid.", args.template, template.GetSize(), template.GetSpacing(),
                       brats.GetSize(), brats.GetSpacing())


def plan_all(args: argparse.Namespace, work: Work) -> None:
    from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess

    for modality in ("T1", "T2"):
        key = f"CamCAN_{modality}"
        if work.done(f"plan_{key}"):
            continue
        logger.info("Planning and preprocessing %s (%s)", dataset_name(key), args.configuration)
        folder = plan_and_preprocess(dataset_name(key), [args.configuration], num_workers=max(args.num_processes, 1))
        if args.plans_override is not None:
            apply_plans_override(folder, args.configuration, json.loads(args.plans_override.read_text()))
        work.mark("plan", f"plan_{key}")


def apply_plans_override(preprocessed: Path, configuration: str, overrides: dict) -> None:
    """Set dotted plans entries of the configuration (``{"batch.n_volumes": 2, ...}``): editing the plans
    is a supported way to run an experiment; entries that change preprocessing are not allowed."""
    from disyre_v2.planning.plans import load_plans, save_plans
    from disyre_v2.preprocessing.preprocessor import preprocessing_signature

    plans = load_plans(preprocessed)
    node = plans["configurations"][configuration]
    before = preprocessing_signature(node)
    for dotted, value in overrides.items():
        target = node
        *path, last = dotted.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    if preprocessing_signature(node) != before:
        raise UserError("--plans_override changes how the data are preprocessed", fix="override training, network "
                        "or inference entries only")
    save_plans(plans, preprocessed)


# -- training ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One (trainer, score) of a table, with the row it fills."""

    row: str
    trainer: str
    score: str | None


def model_folder(work: Work, modality: str, trainer: str, configuration: str) -> Path:
    from disyre_v2.planning.plans import load_plans

    plans = load_plans(work.preprocessed / dataset_name(f"CamCAN_{modality}") / "plans.json")
    return work.results / dataset_name(f"CamCAN_{modality}") / f"{trainer}__{plans.get('plans_name', 'DisyrePlans')}__{configuration}"


def run_folder(work: Work, modality: str, trainer: str, configuration: str, seed: int) -> Path:
    return model_folder(work, modality, trainer, configuration) / f"fold_all_seed_{seed}"


def training_jobs(cells: Sequence[Cell], seeds: Sequence[int]) -> list[tuple[str, str, int]]:
    trainers = list(dict.fromkeys(cell.trainer for cell in cells))
    return [(trainer, modality, seed) for trainer in trainers for modality in ("T1", "T2") for seed in seeds]


def estimate_time(args: argparse.Namespace, work: Work, remaining: list[tuple[str, str, int]], predictions: int) -> dict:
    """Train DISYRE v2 for a few steps on the chosen device in a scratch folder, time the steps and one
    test case's prediction, and scale them to the remaining work."""
    import torch

    from disyre_v2.inference.predictor import DisyrePredictor
    from disyre_v2.training.run_training import train

    path = work.root / "timing" / "estimate.json"
    if path.is_file() and json.loads(path.read_text()).get("device") == args.device:
        measured = json.loads(path.read_text())
    else:
        scratch = work.root / "timing" / "results"
        shutil.rmtree(scratch, ignore_errors=True)
        os.environ["DISYRE_results"] = str(scratch)
        try:
            folder = train(dataset_name("CamCAN_T1"), args.configuration, "all", seed=0, num_steps=args.timing_steps,
                           device=args.device, val_every=args.timing_steps)
            progress = torch.load(folder / "checkpoint_final.pth", weights_only=True, map_location="cpu")["progress"]
            times = progress["step_time"][2:] or progress["step_time"]
            predictor = DisyrePredictor.from_model_folder(folder.parent, args.configuration, seeds=[0], score="ensemble",
                                                          device=args.device, median_filter_size=0)
            images = work.raw / dataset_name("BraTS2020_T1") / "imagesTs"
            case = sorted(images.glob("*_0000.nii.gz"))[0]
            started = time.perf_counter()
            predictor.predict_case([case])
            measured = {"device": args.device, "step_s": statistics.median(times), "steps_timed": len(times),
                        "case_s": time.perf_counter() - started}
        finally:
            os.environ["DISYRE_results"] = str(work.results)
            shutil.rmtree(scratch, ignore_errors=True)
        write_json_atomic(measured, path)
    steps_left = sum(max(args.steps - trained_steps(run_folder(work, modality, trainer, args.configuration, seed)), 0)
                     for trainer, modality, seed in remaining)
    estimate = {**measured, "models_left": len(remaining), "steps_left": steps_left,
                "training_s": steps_left * measured["step_s"], "prediction_s": predictions * measured["case_s"]}
    logger.info("Estimated time on %s: training %d model(s), %d steps at %.3f s/step ≈ %s; prediction of %d map(s) "
                "at %.2f s per case ≈ %s (measured over %d steps of DISYRE v2 and one BraTS case; other trainers and "
                "the multi-step score differ).", args.device, len(remaining), steps_left, measured["step_s"],
                _duration(estimate["training_s"]), predictions, measured["case_s"], _duration(estimate["prediction_s"]),
                measured["steps_timed"])
    return estimate


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def trained_steps(folder: Path) -> int:
    """Steps an unfinished run already has (those of its checkpoint_latest.pth, else 0)."""
    latest = folder / "checkpoint_latest.pth"
    if latest.is_file():
        import torch

        return int(torch.load(latest, weights_only=True, map_location="cpu").get("step", 0))
    return 0


def train_all(args: argparse.Namespace, work: Work, jobs: list[tuple[str, str, int]]) -> None:
    from disyre_v2.training.run_training import train

    for k, (trainer, modality, seed) in enumerate(jobs, 1):
        folder = run_folder(work, modality, trainer, args.configuration, seed)
        if (folder / "checkpoint_final.pth").is_file():
            continue
        logger.info("Training %d/%d: %s on CamCAN %s, seed %d, %d steps", k, len(jobs), trainer, modality, seed, args.steps)
        train(dataset_name(f"CamCAN_{modality}"), args.configuration, "all", trainer=trainer, seed=seed,
              num_steps=args.steps, resume=(folder / "checkpoint_latest.pth").is_file(), device=args.device,
              deterministic=args.deterministic)
        work.mark("train", f"train_{trainer}_{modality}_seed{seed}")


# -- prediction and evaluation -----------------------------------------------------------------------
def own_score(work: Work, cell: Cell, configuration: str, seed: int) -> str:
    if cell.score is not None:
        return cell.score
    from disyre_v2.inference.model_loading import load_models

    return load_models(model_folder(work, "T1", cell.trainer, configuration), configuration, seeds=[seed])[0].scores[0]


def predict_and_evaluate(args: argparse.Namespace, work: Work, cells: Sequence[Cell], subset_labels: Path | None) -> None:
    from disyre_v2.evaluation.evaluator import evaluate_folders
    from disyre_v2.inference.predict_folder import predict_folder
    from disyre_v2.inference.predictor import DisyrePredictor

    units = list(dict.fromkeys((cell.trainer, cell.score) for cell in cells))
    for trainer, score in units:
        for seed in args.seeds:
            score_name = own_score(work, Cell("", trainer, score), args.configuration, seed)
            for test_set, modality in TEST_SETS:
                raw = work.raw / dataset_name(TEST_DATASET[test_set])
                maps = work.maps(test_set, trainer, score_name, seed)
                key = f"predict_{test_set}_{trainer}_{score_name}_seed{seed}"
                if not work.done(key):
                    logger.info("Predicting %s with %s (%s), seed %d", test_set, trainer, score_name, seed)
                    # One model, one seed: the paper's mean over seeds averages metrics, not maps; and the
                    # paper's raw map, without this project's median filter.
                    predictor = DisyrePredictor.from_model_folder(
                        model_folder(work, modality, trainer, args.configuration), args.configuration, folds=["all"],
                        seeds=[seed], score=score_name, device=args.device, median_filter_size=0)
                    predict_folder(predictor, raw / "imagesTs", maps, resume=True)
                    work.mark("predict", key)
                references = [("", raw / "labelsTs", None)]
                if test_set == "ATLAS" and subset_labels is not None:
                    references.append(("table2_subset", subset_labels / "labelsTs", subset_labels / "masksTs"))
                for protocol in PROTOCOLS:
                    for subset, labels, masks in references:
                        output = work.evaluation(test_set, trainer, score_name, seed, protocol, subset)
                        if output.is_file():
                            continue
                        evaluate_folders(maps, labels, mask_dir=masks, output=output, protocol=protocol, seed=0,
                                         progress=False)
                        STAGE_HOOK("evaluate", str(output))


def atlas_subset(work: Work, excluded: Sequence[str]) -> Path | None:
    """Labels and brain masks of the ATLAS cases not excluded, for Table 2 (links to the dataset's files)."""
    if not excluded:
        return None
    subset = work.root / "subsets" / "ATLAS_table2"
    if work.done("atlas_subset"):
        return subset
    shutil.rmtree(subset, ignore_errors=True)
    raw = work.raw / dataset_name("ATLAS")
    for folder in ("labelsTs", "masksTs"):
        (subset / folder).mkdir(parents=True)
        for path in sorted((raw / folder).glob("*.nii.gz")):
            if path.name.removesuffix(".nii.gz") not in excluded:
                os.symlink(path, subset / folder / path.name)
    work.mark("subset", "atlas_subset")
    return subset


# -- tables ----------------------------------------------------------------------------------------
def _figures(work: Work, trainer: str, score: str, seeds: Sequence[int], table2: bool) -> dict[str, list]:
    figures: dict[str, list] = {}
    for test_set, _ in TEST_SETS:
        subset = "table2_subset" if table2 and test_set == "ATLAS" else ""
        for seed in seeds:
            path = work.evaluation(test_set, trainer, score, seed, TABLE_PROTOCOL, subset)
            if subset and not path.is_file():
                path = work.evaluation(test_set, trainer, score, seed, TABLE_PROTOCOL)
            pooled = json.loads(path.read_text())["pooled"] if path.is_file() else {}
            figures.setdefault(f"{test_set}_ap", []).append(pooled.get("average_precision"))
            figures.setdefault(f"{test_set}_dice", []).append(pooled.get("best_dice"))
    return figures


def table_rows(work: Work, methods: Sequence[Method], columns, seeds: Sequence[int], run: set[str], table2: bool,
               configuration: str) -> list[TableRow]:
    built = available_trainers()
    rows = []
    for method in methods:
        paper = dict(zip((key for key, _ in columns), method.paper))
        if method.trainer is None or method.trainer not in built:
            note = method.why_not or f"trainer {method.trainer} is not in this version of disyre_v2"
            rows.append(TableRow(method.row, paper, status="not built", note=note))
        elif method.row not in run:
            rows.append(TableRow(method.row, paper, status="not run",
                                 note=f"add --methods {method.trainer} to train and evaluate it"))
        else:
            score = own_score(work, Cell(method.row, method.trainer, method.score), configuration, seeds[0])
            rows.append(TableRow(method.row, paper, _figures(work, method.trainer, score, seeds, table2),
                                 note=f"{method.trainer}, score {score}"))
    return rows


def training_note(camcan: dict) -> str:
    """What the models were trained on, said against the paper's split (603 training, 50 validation
    subjects): a run without --camcan_validation trains on every subject, and the tables say so."""
    n_validation = len(camcan.get("validationCases", []))
    held_out = (f"{n_validation} held-out validation subjects" if n_validation else
                "no validation subjects held out: no --camcan_validation was given, so every subject trained, "
                "where the paper held out 50")
    return f"trained on CamCAN ({camcan.get('numTraining')} training subjects, {held_out}), one model per modality."


def write_tables(args: argparse.Namespace, work: Work, run_rows: set[str], excluded: Sequence[str], conversion: dict) -> list[Path]:
    n_atlas = len(list((work.raw / dataset_name("ATLAS") / "labelsTs").glob("*.nii.gz")))
    n_brats = len(list((work.raw / dataset_name("BraTS2020_T1") / "labelsTs").glob("*.nii.gz")))
    camcan = json.loads((work.raw / dataset_name("CamCAN_T1") / "dataset.json").read_text())
    common = [
        f"Protocol: `{TABLE_PROTOCOL}` (the authors' evaluation code: 10,000 voxels drawn per volume, [Dice] over "
        f"200 thresholds); the `exact` protocol's figures are in evaluation/ beside them.",
        f"One prediction and one evaluation per seed (seeds {', '.join(map(str, args.seeds))}), metrics averaged over "
        f"seeds (the paper's mean of seeds), not the seed-averaged map disyre_v2_predict makes.",
        "The paper's raw ensemble map: no median filter (median_filter_size 0).",
        f"Configuration {args.configuration}, {args.steps} training steps per model, device {args.device}; "
        + training_note(camcan),
        "Data: " + "; ".join(f"{k}: {v}" for k, v in sorted(conversion.items())) + "."
        + (f" Template: {args.template}." if args.template else ""),
    ]
    written = []
    if 1 in args.tables:
        notes = [f"Test sets: ATLAS all {n_atlas} converted cases, BraTS 2020 all {n_brats} cases (T1 and T2)."] + common
        rows = table_rows(work, TABLE1, TABLE1_COLUMNS, args.seeds, run_rows, False, args.configuration)
        compared = compare(rows, TABLE1_COLUMNS)
        write_table(compared, TABLE1_COLUMNS, work.tables / "table1.md", work.tables / "table1.json",
                    title="Table 1: localisation, AP and [Dice]", notes=notes,
                    metadata={"protocol": TABLE_PROTOCOL, "seeds": args.seeds, "atlas_cases": n_atlas})
        print(markdown(compared, TABLE1_COLUMNS))
        written += [work.tables / "table1.md", work.tables / "table1.json"]
    if 2 in args.tables:
        subset = (f"ATLAS without the {len(excluded)} case(s) of --atlas_exclude {args.atlas_exclude} "
                  f"({n_atlas - len(excluded)} of {n_atlas})" if excluded else
                  f"ATLAS all {n_atlas} cases: no --atlas_exclude given, so not the paper's subset without problem cases")
        notes = [f"ATLAS subset: {subset}."] + common
        rows = table_rows(work, TABLE2, TABLE2_COLUMNS, args.seeds, {m.row for m in TABLE2}, True, args.configuration)
        compared = compare(rows, TABLE2_COLUMNS)
        write_table(compared, TABLE2_COLUMNS, work.tables / "table2.md", work.tables / "table2.json",
                    title="Table 2: anomaly generation × score, AP", notes=notes,
                    metadata={"protocol": TABLE_PROTOCOL, "seeds": args.seeds, "atlas_subset": subset,
                              "atlas_excluded": list(excluded)})
        print(markdown(compared, TABLE2_COLUMNS))
        written += [work.tables / "table2.md", work.tables / "table2.json"]
    return written


# -- the command ---------------------------------------------------------------------------------------
def cells_of(args: argparse.Namespace, methods: Sequence[Method]) -> list[Cell]:
    built = available_trainers()
    cells = []
    if 1 in args.tables:
        rows = [m for m in TABLE1 if m.row in ALWAYS_IN_TABLE1] + list(methods)
        cells += [Cell(m.row, m.trainer, m.score) for m in rows if m.trainer in built]
        for m in methods:
            if m.trainer not in built:
                logger.warning("--methods %s: %s", m.trainer or m.row, m.why_not or "not built in this version; "
                               "its row is reported as 'not built'")
    if 2 in args.tables:
        cells += [Cell(m.row, m.trainer, m.score) for m in TABLE2]
    return cells


def run(args: argparse.Namespace) -> list[Path]:
    checked = check_inputs(args)
    work = Work(args.output.resolve())
    work.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(checked["settings"], work.root / "options.json")
    work.use_environment()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was given but no CUDA device is available", fix="use --device cpu")
    conversion = convert_all(args, work)
    if args.camcan_validation is None:
        logger.warning("No --camcan_validation: every CamCAN subject trains, where the paper held out 50 for "
                       "validation (the DISYRE authors' experiments/camcan_upd.json lists them); the tables say so.")
    check_template_grid(args, work)
    plan_all(args, work)
    cells = cells_of(args, checked["methods"])
    jobs = training_jobs(cells, args.seeds)
    remaining = [job for job in jobs if not (run_folder(work, job[1], job[0], args.configuration, job[2])
                                             / "checkpoint_final.pth").is_file()]
    n_cases = sum(len(list((work.raw / dataset_name(TEST_DATASET[t]) / "imagesTs").glob("*_0000.nii.gz"))) for t, _ in TEST_SETS)
    n_units = len(dict.fromkeys((c.trainer, c.score) for c in cells)) * len(args.seeds)
    if remaining:
        estimate_time(args, work, remaining, n_cases * n_units)
    train_all(args, work, jobs)
    predict_and_evaluate(args, work, cells, atlas_subset(work, checked["excluded"]))
    written = write_tables(args, work, {c.row for c in cells}, checked["excluded"], conversion)
    logger.info("Tables written: %s", ", ".join(map(str, written)))
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reproduce_paper.py",
        description="Reproduce the DISYRE v2 paper's Table 1 and Table 2 (MICCAI 2024): CamCAN for training (one "
        "model per modality), ATLAS and BraTS 2020 T1/T2 for testing, evaluated with the paper's protocol. Every "
        "stage skips what is complete: rerun with --continue after a kill. Outputs under -o: tables/table1.md "
        "(.json), tables/table2.md (.json), maps/, evaluation/, and raw/, preprocessed/, results/.",
        epilog="Example: python benchmarks/reproduce_paper.py --camcan /data/cc700 --atlas /data/ATLAS_2 --brats "
        "/data/MICCAI_BraTS2020_TrainingData --template sri24/T1_brain.nii -o paper_run --device cuda "
        "--atlas_exclude atlas_problem_cases.txt  (documentation/how_to/reproduce_paper.md)",
    )
    parser.add_argument("--camcan", type=Path, required=True,
                        help="CamCAN cc700 download, or a folder of *_T1w/_T2w_stripped_registered copies")
    parser.add_argument("--atlas", type=Path, required=True, help="ATLAS R2.0 (ATLAS_2/...), or with *_stripped_registered copies")
    parser.add_argument("--brats", type=Path, required=True, help="BraTS 2020 training data (MICCAI_BraTS2020_TrainingData)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="work folder; everything is written under it")
    parser.add_argument("--template", type=Path, default=None,
                        help="the SRI24 T1 brain template (BraTS's grid), needed only when CamCAN or ATLAS are raw "
                        "downloads that must be skull-stripped (ROBEX) and registered first; no package ships it")
    parser.add_argument("--camcan_validation", type=Path, default=None,
                        help="CamCAN subjects held out for validation (the paper's 50), one id per line")
    parser.add_argument("--atlas_exclude", type=Path, default=None,
                        help="ATLAS problem cases left out of Table 2 (not public; one id per line); without it "
                        "Table 2 uses every case and says so")
    parser.add_argument("--steps", type=int_at_least(1), default=100_000,
                        help="training steps per model (default 100000, the reference configuration; the paper says 200k)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="training seeds (default 0 1 2 3)")
    parser.add_argument("--tables", type=int, nargs="+", choices=(1, 2), default=[1, 2], help="tables to make (default 1 2)")
    parser.add_argument("--methods", nargs="*", default=[], metavar="TRAINER",
                        help="comparison methods for Table 1 by trainer or row name (e.g. DaeTrainer VaeTrainer); "
                        "rows of methods not built here are reported as 'not built'")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training and prediction device")
    parser.add_argument("--configuration", default="2d",
                        help="plans configuration (default 2d, the paper's; 2d_small for a CPU check)")
    parser.add_argument("--plans_override", type=Path, default=None,
                        help="JSON file of plans entries to set in the configuration after planning, dotted keys "
                        "(e.g. {\"batch.n_volumes\": 4}); for experiments and tests")
    parser.add_argument("--deterministic", action="store_true", help="deterministic training (slower)")
    parser.add_argument("--timing_steps", type=int_at_least(1), default=20, help="steps of the timed run behind the estimate (default 20)")
    parser.add_argument("-np", "--num_processes", type=int, default=2,
                        help="processes for preparation and preprocessing (default 2)")
    parser.add_argument("--continue", dest="resume", action="store_true",
                        help="resume the run in -o, skipping every finished stage")
    add_common_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
