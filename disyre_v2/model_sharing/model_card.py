"""MODEL.md, the model card of an exported model: what it was trained on and how, its validation curves,
what it is for and where it stops. Made from the manifest only, so it is as reproducible as the archive."""
from __future__ import annotations

INTENDED_USE = (
    "Voxel-wise anomaly maps of brain MRI scans acquired and prepared like the training data (the same "
    "channels in the same order, skull-stripped and registered like them): every brain voxel gets a score, "
    "higher is more unlike the healthy training scans. For research; it is not a medical device."
)
LIMITS = (
    "- The model learned healthy anatomy from the training scans only: scanners, sequences, ages or "
    "preparations unlike theirs raise scores everywhere, lesion or not.\n"
    "- Scores are relative: a threshold holds only for the calibration it was computed from "
    "(`disyre_v2_calibrate` on healthy scans of the site that will use it, with the same prediction "
    "settings). Calibrations shipped in `calibrations/` hold for the scans they name.\n"
    "- Foci smaller than the median filter's cube (2d_small: 3 voxels) are damped; see the documentation "
    "of `disyre_v2_predict --median_filter`."
)


def render_model_card(manifest: dict, has_figure: dict[str, bool]) -> str:
    data = manifest.get("data", {})
    channels = data.get("channel_names") or {}
    channel_text = ", ".join(f"{k}: {v}" for k, v in sorted(channels.items(), key=lambda kv: int(kv[0]))) or "unknown"
    runs = manifest.get("runs", [])
    lines = [
        f"# Model card: {manifest['dataset']} / {manifest['model_folder']}",
        "",
        f"Exported by disyre_v2 {manifest['disyre_v2_version']} (archive format {manifest['format']} "
        f"version {manifest['format_version']}). Install with `disyre_v2_install_model MODEL.zip`, or unzip it "
        f"and predict with `disyre_v2_predict -m FOLDER -i IN -o OUT`.",
        "",
        "## Training data",
        "",
        f"- Dataset: {data.get('name', manifest['dataset'])}" + (f" — {data['description']}" if data.get("description") else ""),
        f"- Channels (in this order in every input case): {channel_text}",
        f"- Healthy training cases: {data.get('numTraining', 'unknown')}",
        "",
        "## Training",
        "",
        f"Configuration `{manifest['configuration']}`, checkpoint `{manifest['checkpoint']}`; the prediction "
        f"averages the maps of {len(runs)} run(s).",
        "",
        "| run | trainer | steps | weights | device | global batch |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        training = run.get("training") or {}
        lines.append(f"| {run['run']} | {run.get('trainer') or training.get('trainer', '?')} | {run['step']} | "
                     f"{run['weights']} | {training.get('device', '?')} | {training.get('global_batch', '?')} |")
    figures = [run["run"] for run in runs if has_figure.get(run["run"])]
    if figures:
        lines += ["", "## Validation curves", ""]
        lines += [f"![{name}: training and validation loss]({name}/progress.png)" for name in figures]
    lines += ["", "## Intended use", "", INTENDED_USE, "", "## Limits", "", LIMITS, ""]
    return "\n".join(lines)
