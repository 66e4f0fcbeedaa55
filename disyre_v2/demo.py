"""The whole chain on the built-in synthetic benchmark, in one call (``disyre_v2_demo``).

Everything lives under one output folder (its own raw, preprocessed and results folders), so the
demo never touches the user's datasets: synthetic benchmark → plan and preprocess (2d_small) →
train on CPU within a time budget → predict the test cases → evaluate with an HTML report.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from disyre_v2.dataset.dataset_json import write_json_atomic

logger = logging.getLogger(__name__)

DEMO_DATASET_ID = 990
CONFIGURATION = "2d_small"
MARKER = ".disyre_v2_demo"
OWNED = ("raw", "preprocessed", "results", "predictions", "report", "demo_summary.json")


@dataclass(frozen=True)
class DemoSettings:
    n_train: int
    n_test: int
    training_budget_s: float
    max_steps: int


# The full demo stays within about 15 minutes on 2 cores, the quick one within about 3.
FULL = DemoSettings(n_train=24, n_test=10, training_budget_s=540.0, max_steps=3000)
QUICK = DemoSettings(n_train=6, n_test=3, training_budget_s=45.0, max_steps=3000)


@contextmanager
def _environment(root: Path):
    keys = {"DISYRE_raw": root / "raw", "DISYRE_preprocessed": root / "preprocessed", "DISYRE_results": root / "results"}
    previous = {key: os.environ.get(key) for key in keys}
    try:
        for key, folder in keys.items():
            folder.mkdir(parents=True, exist_ok=True)
            os.environ[key] = str(folder)
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def prepare_output(output: Path) -> None:
    """An empty folder, or one a previous demo made (its outputs are replaced); anything else is refused."""
    if output.exists() and any(output.iterdir()):
        if not (output / MARKER).is_file():
            raise FileExistsError(f"{output} is not empty and was not made by disyre_v2_demo; choose another -o.")
        for name in OWNED:
            path = output / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("made by disyre_v2_demo; its contents are replaced when the demo runs again\n")


def run_demo(output: Path | str = "disyre_v2_demo", quick: bool = False, seed: int = 0,
             num_processes: int = 1) -> dict:
    """Run the chain; returns the evaluation summary (also written to output/demo_summary.json)."""
    from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset
    from disyre_v2.evaluation.evaluator import evaluate_folders
    from disyre_v2.inference.predict_folder import predict_folder
    from disyre_v2.inference.predictor import DisyrePredictor
    from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess
    from disyre_v2.training.run_training import train

    settings = QUICK if quick else FULL
    output = Path(output).resolve()
    prepare_output(output)
    timings: dict[str, float] = {}
    with _environment(output):
        started = time.perf_counter()
        raw = make_synthetic_dataset(DEMO_DATASET_ID, settings.n_train, settings.n_test, seed=seed,
                                     num_processes=num_processes, name="DemoSynthetic")
        timings["synthetic_dataset_s"] = time.perf_counter() - started

        started = time.perf_counter()
        plan_and_preprocess(DEMO_DATASET_ID, [CONFIGURATION], num_workers=num_processes)
        timings["plan_and_preprocess_s"] = time.perf_counter() - started

        started = time.perf_counter()
        run_folder = train(DEMO_DATASET_ID, CONFIGURATION, "all", seed=seed, num_steps=settings.max_steps,
                           time_budget_s=settings.training_budget_s, val_every=max(settings.max_steps // 10, 1))
        timings["training_s"] = time.perf_counter() - started

        started = time.perf_counter()
        predictor = DisyrePredictor.from_model_folder(run_folder.parent, CONFIGURATION)
        # Restorations too: the report shows them beside image and map.
        predict_folder(predictor, raw / "imagesTs", output / "predictions", save_restorations=True)
        timings["prediction_s"] = time.perf_counter() - started

        started = time.perf_counter()
        summary = evaluate_folders(output / "predictions", raw / "labelsTs", report_dir=output / "report")
        timings["evaluation_s"] = time.perf_counter() - started

    summary["demo"] = {"settings": asdict(settings), "quick": quick, "seed": seed, "timings": timings,
                       "model": str(run_folder), "report": str(output / "report" / "index.html")}
    write_json_atomic(summary, output / "demo_summary.json")
    logger.info("Demo finished in %.0f s.", sum(timings.values()))
    return summary
