"""A plain-text table of a summary.json, for the terminal (evaluate and demo print it)."""
from __future__ import annotations


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_summary(summary: dict) -> str:
    pooled = summary["pooled"]
    rows = [("all", summary["n_cases"], pooled["average_precision"], pooled["best_dice"])]
    for kind, metrics in summary.get("per_kind", {}).items():
        rows.append((kind, metrics["n_cases"], metrics["average_precision"], metrics["best_dice"]))
    lines = [f"{summary['n_cases']} cases, protocol {summary['protocol']}; [Dice] threshold {_fmt(pooled['best_threshold'])}",
             f"{'cases':<12}{'n':>4}{'AP':>10}{'[Dice]':>10}"]
    lines += [f"{name:<12}{n:>4}{_fmt(ap):>10}{_fmt(dice):>10}" for name, n, ap, dice in rows]
    lines.append(f"volume-level AUROC {_fmt(summary['volume_level']['auroc'])}, "
                 f"slice-level AUROC {_fmt(summary['slice_level']['auroc'])}")
    fp = summary.get("error_analysis", {}).get("false_positives")
    if fp and fp["rim_share"]["top_0.1pct"] is not None:
        lines.append(f"top 0.1 % of lesion-free voxels: {100 * fp['rim_share']['top_0.1pct']:.1f} % within 2 mm of the "
                     f"brain boundary, which holds {100 * fp['rim_brain_share']:.1f} % of the brain "
                     f"(ratio {fp['rim_ratio']:.2f})")
    point = summary.get("operating_point")
    if point is not None:
        lesion_wise, free = point["lesion_wise"], point["lesion_free_volumes"]
        lines.append(f"at threshold {point['threshold']:.6g} ({point['threshold_source']}): Dice "
                     f"{_fmt(point['pooled']['dice'])} ([Dice] {_fmt(point['oracle']['best_dice'])}), precision "
                     f"{_fmt(point['pooled']['precision'])}, recall {_fmt(point['pooled']['recall'])}")
        lines.append(f"  lesions found {lesion_wise['found']}/{lesion_wise['reference_lesions']}, false-positive "
                     f"components per volume {_fmt(lesion_wise['false_positive_components_per_volume'])}, lesion-free "
                     f"voxel FPR {_fmt(free['voxel_false_positive_rate'])}")
        if "flagged" in point:
            lines.append(f"  flagged volumes: sensitivity {_fmt(point['flagged']['sensitivity'])}, specificity "
                         f"{_fmt(point['flagged']['specificity'])}")
    return "\n".join(lines)
