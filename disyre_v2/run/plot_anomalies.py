"""disyre_v2_plot_anomalies: what the synthetic training anomalies look like (the paper's Fig. 1).

Top: one slice with one anomaly (fixed shape, location, foreign patch and tissue cluster) at
increasing α_bias (rows) and α_text (columns), once with a positive bias sign (hyperintense) and once
with a negative one (hypointense); modes without a bias show a single row. Bottom: random training
samples made by the real pipeline (memory-mapped loader, augmentation, synthesis) with their level t.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from disyre_v2.run.common import add_common_flags, int_at_least, run_cli

# Strengths of the grid (the paper's Fig. 1 spans 0 to 1 in both directions).
GRID_ALPHAS = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0)
FORMATS = ("png", "pdf", "svg")


def build_parser() -> argparse.ArgumentParser:
    from disyre_v2.training.anomalies.config import MODES, SHAPE_KINDS

    parser = argparse.ArgumentParser(
        prog="disyre_v2_plot_anomalies",
        description="Plot synthetic training anomalies of a preprocessed dataset: an α_bias × α_text grid of "
                    "one fixed anomaly (as in the paper's Fig. 1) and random training samples from the real "
                    "loader, augmentation and synthesis, with their level t.",
    )
    parser.add_argument("-d", "--dataset", required=True,
                        help="dataset id (1, 001) or full name (Dataset001_Name) in $DISYRE_preprocessed")
    parser.add_argument("-c", "--configuration", required=True, help="configuration of plans.json, e.g. 2d or 2d_small")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help=f"figure file to write ({', '.join('.' + f for f in FORMATS)}); written atomically")
    parser.add_argument("--mode", choices=[m for m in MODES if m != "none"], default=None,
                        help="synthesis mode (default: the plans' anomaly_synthesis.mode); fpi has no bias, so its "
                             "grid is a single row of α_text")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed; the same seed gives the same figure (default 0)")
    parser.add_argument("--case", default=None,
                        help="case id whose largest brain slice is shown in the grid (default: the first case)")
    parser.add_argument("--channel", type=int_at_least(0), default=0, help="channel to show (default 0)")
    parser.add_argument("--shape", choices=SHAPE_KINDS, default="irregular", help="shape of the grid's anomaly (default irregular)")
    parser.add_argument("--n_samples", type=int_at_least(1), default=8, help="random training samples to show (default 8)")
    parser.add_argument("--no_zoom", action="store_true",
                        help="show whole patches in the grid (default: the anomaly canvas with a margin of C/4, "
                             "where the texture changes are visible)")
    add_common_flags(parser)
    return parser


# -- data -------------------------------------------------------------------------------------------
def _load_configuration(dataset: str, configuration: str) -> tuple[str, dict, dict, Path]:
    from disyre_v2.paths import preprocessed_folder, resolve_dataset_name
    from disyre_v2.planning.plans import get_configuration, load_plans

    name = resolve_dataset_name(dataset, [preprocessed_folder()])
    folder = preprocessed_folder() / name
    plans = load_plans(folder)
    config = get_configuration(plans, configuration)
    data_folder = folder / config["data_identifier"]
    if not data_folder.is_dir() or not any(data_folder.glob("*_mask.npy")):
        raise FileNotFoundError(f"{data_folder} holds no preprocessed case: run disyre_v2_plan_and_preprocess -d "
                                f"{dataset} -c {configuration} first.")
    return name, plans, config, data_folder


def _case_ids(data_folder: Path) -> list[str]:
    return sorted(p.name[: -len("_mask.npy")] for p in data_folder.glob("*_mask.npy"))


def _largest_slice(data_folder: Path, case_id: str, slice_axis: int, rank: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(C, H, W) image and (H, W) brain of the slice with the ``rank``-th largest brain area."""
    image = np.load(data_folder / f"{case_id}.npy", mmap_mode="r")
    mask = np.load(data_folder / f"{case_id}_mask.npy", mmap_mode="r")
    other = tuple(a for a in range(3) if a != slice_axis)
    order = np.argsort(-np.asarray(mask).sum(axis=other), kind="stable")
    index = int(order[min(rank, len(order) - 1)])
    take = [slice(None)] * 3
    take[slice_axis] = index
    return np.asarray(image[(slice(None), *take)], np.float32), np.asarray(mask[tuple(take)], bool), index


def _centre_patch(image: np.ndarray, brain: np.ndarray, patch: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The patch centred on the brain's bounding box: centre crop where larger, zero padding where smaller."""
    from disyre_v2.training.data_loader import brain_bounding_box_2d

    rows, cols = brain_bounding_box_2d(brain)
    image, brain = image[:, rows, cols], brain[rows, cols]
    out_image = np.zeros((image.shape[0], *patch), np.float32)
    out_brain = np.zeros(patch, bool)
    src, dst = [], []
    for size, target in zip(brain.shape, patch):
        start, before = max((size - target) // 2, 0), max((target - size) // 2, 0)
        length = min(size, target)
        src.append(slice(start, start + length))
        dst.append(slice(before, before + length))
    out_image[(slice(None), *dst)] = image[(slice(None), *src)]
    out_brain[tuple(dst)] = brain[tuple(src)]
    return out_image, out_brain


def _training_samples(config: dict, data_folder: Path, cases: list[str], mode: str, seed: int) -> dict:
    """One batch of the real training pipeline (in this process)."""
    from disyre_v2.training.anomalies.transform import AnomalySynthesisTransform
    from disyre_v2.training.augmentation import build_augmentation
    from disyre_v2.training.data_loader import SliceDataLoader
    from disyre_v2.training.data_pipeline import build_batch_generator

    patch, batch = config["patch_size"], config["batch"]
    loader = SliceDataLoader(data_folder, cases, patch, batch["n_volumes"], batch["n_slices"], seed=seed,
                             slice_axis=config.get("slice_axis", 0))
    transforms = build_augmentation(config["augmentation"], patch) + [
        AnomalySynthesisTransform.from_plans(config, seed=seed, mode=mode)]
    return next(build_batch_generator(loader, transforms, num_workers=0))


# -- drawing ----------------------------------------------------------------------------------------
def _show(ax, image: np.ndarray) -> None:
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _zoom_window(window: tuple[slice, slice], shape: tuple[int, int]) -> tuple[slice, slice]:
    """The canvas grown by C/4 on each side, inside the patch."""
    out = []
    for part, size in zip(window, shape):
        margin = (part.stop - part.start) // 4
        out.append(slice(max(part.start - margin, 0), min(part.stop + margin, size)))
    return tuple(out)


def _draw_grid(subfig, grid: np.ndarray, channel: int, alpha_text: tuple, alpha_bias: tuple, title: str,
               view: tuple[slice, slice]) -> None:
    axes = subfig.subplots(len(alpha_bias), len(alpha_text), squeeze=False)
    for i, a_bias in enumerate(alpha_bias):
        for j, a_text in enumerate(alpha_text):
            _show(axes[i, j], grid[i, j, channel][view])
            if i == 0 and len(alpha_text) > 1:  # a single value is a part the mode lacks: no label
                axes[i, j].set_title(f"α_text={a_text:.2f}", fontsize=8)
            if j == 0 and len(alpha_bias) > 1:
                axes[i, j].set_ylabel(f"α_bias={a_bias:.2f}", fontsize=8)
    subfig.suptitle(title, fontsize=9)


def _draw_samples(subfig, batch: dict, channel: int, n: int, rng: np.random.Generator) -> None:
    total = len(batch["t"])
    picks = np.sort(rng.choice(total, min(n, total), replace=False))
    axes = subfig.subplots(2, len(picks), squeeze=False)
    for j, i in enumerate(picks):
        _show(axes[0, j], batch["data"][i, channel])
        axes[0, j].set_title(f"t={int(batch['t'][i])}", fontsize=8)
        _show(axes[1, j], batch["target"][i, channel])
        m = batch["anomaly_mask"][i, 0]
        if m.max() > 0:  # outline of the anomaly on the clean slice
            axes[1, j].contour(m, levels=[0.5 * float(m.max())], colors="red", linewidths=0.6)
    axes[0, 0].set_ylabel("input x_sc", fontsize=8)
    axes[1, 0].set_ylabel("target x0", fontsize=8)
    subfig.suptitle("random training samples (loader + augmentation + synthesis)", fontsize=9)


def _save_atomically(figure, output: Path) -> Path:
    from disyre_v2.imageio.atomic import atomic_path

    fmt = output.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{output}: unsupported figure format {output.suffix!r}; name the file .png, .pdf or .svg.")
    with atomic_path(output, output.suffix) as tmp:
        figure.savefig(tmp, format=fmt, dpi=150)
    return output


def plot_anomalies(dataset: str, configuration: str, output: Path, *, mode: str | None = None, seed: int = 0,
                   case: str | None = None, channel: int = 0, shape: str = "irregular", n_samples: int = 8,
                   zoom: bool = True) -> Path:
    """Write the figure described in the module docstring; returns ``output``."""
    from matplotlib.figure import Figure

    from disyre_v2.training.anomalies.config import AnomalySynthesisConfig
    from disyre_v2.training.anomalies.figure import alpha_grid, draw_fixed_anomaly

    output = Path(output)
    if output.suffix.lower().lstrip(".") not in FORMATS:  # fail before any work
        raise ValueError(f"{output}: unsupported figure format {output.suffix!r}; name the file .png, .pdf or .svg.")
    if n_samples < 1:
        raise ValueError(f"--n_samples must be at least 1, got {n_samples}.")
    name, plans, config, data_folder = _load_configuration(dataset, configuration)
    synthesis = AnomalySynthesisConfig.from_plans(config["anomaly_synthesis"], config.get("tissue_centroids"), mode=mode)
    cases = _case_ids(data_folder)
    case = cases[0] if case is None else case
    if case not in cases:
        raise ValueError(f"Case {case!r} is not in {data_folder}; available: {', '.join(cases)}.")
    axis, patch = config.get("slice_axis", 0), tuple(config["patch_size"])
    image, brain, index = _largest_slice(data_folder, case, axis)
    if not 0 <= channel < image.shape[0]:
        raise ValueError(f"--channel {channel} does not exist: the data have {image.shape[0]} channel(s).")
    x, x_brain = _centre_patch(image, brain, patch)
    # Foreign patch: the largest slice of another case (of another slice if there is one case only).
    other = [c for c in cases if c != case]
    foreign, foreign_brain, _ = _largest_slice(data_folder, other[0] if other else case, axis, 0 if other else 1)

    rng = np.random.default_rng(seed)
    anomaly = draw_fixed_anomaly(synthesis, x, x_brain, foreign, foreign_brain, rng, shape_kind=shape, sign=1.0)
    spec = synthesis.spec
    alpha_text = GRID_ALPHAS if spec.texture else (0.0,)
    alpha_bias = GRID_ALPHAS if spec.bias else (0.0,)
    kwargs = dict(rescale=spec.rescale, centroids=synthesis.tissue_centroids or None, tissue_sigma=synthesis.tissue_sigma)
    grids = [(alpha_grid(x, x_brain, anomaly, alpha_text, alpha_bias, **kwargs), "sign +1 (hyperintense)")]
    if spec.bias:
        hypo = dataclasses.replace(anomaly, signs=(-1.0,) * x.shape[0])
        grids.append((alpha_grid(x, x_brain, hypo, alpha_text, alpha_bias, **kwargs), "sign −1 (hypointense)"))
    elif spec.texture:
        grids[0] = (grids[0][0], "texture only (no intensity bias)")
    batch = _training_samples(config, data_folder, cases, synthesis.mode, seed)

    channel_name = plans.get("channel_names", {}).get(str(channel), str(channel))
    cell = 1.15
    grid_height = cell * len(alpha_bias) + 0.6
    width = max(cell * len(alpha_text) * len(grids), cell * min(n_samples, len(batch["t"]))) + 0.6
    figure = Figure(figsize=(width, grid_height + 2 * cell + 1.2), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[grid_height, 2 * cell + 0.6])
    view = _zoom_window(anomaly.window, patch) if zoom else (slice(None), slice(None))
    for sub, (grid, title) in zip(np.atleast_1d(top.subfigures(1, len(grids))), grids):
        _draw_grid(sub, grid, channel, alpha_text, alpha_bias, title + (", zoomed on the anomaly" if zoom else ""), view)
    _draw_samples(bottom, batch, channel, n_samples, rng)
    figure.suptitle(f"{name} {configuration}, mode {synthesis.mode}, channel {channel_name}, case {case} slice {index}",
                    fontsize=10)
    return _save_atomically(figure, output)


def _run(args: argparse.Namespace) -> None:
    path = plot_anomalies(args.dataset, args.configuration, args.output, mode=args.mode, seed=args.seed,
                          case=args.case, channel=args.channel, shape=args.shape, n_samples=args.n_samples,
                          zoom=not args.no_zoom)
    print(f"Wrote {path}")


def main(argv: list[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
