"""index.html of the report: one static page, inline CSS, no script, only relative links."""
from __future__ import annotations

import html
from urllib.parse import quote

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.id, th.id { text-align: left; }
.muted { color: #777; font-size: 0.85em; } .cases { font-size: 0.8em; word-break: break-all; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; border: 1px solid #eee; }
"""


LESION_ROWS_SHOWN = 200


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list], first_is_id: bool = True) -> str:
    head = "".join(f"<th{' class=id' if i == 0 and first_is_id else ''}>{html.escape(h)}</th>" for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = "".join(
            f"<td class=id>{cell}</td>" if i == 0 and first_is_id else f"<td>{cell}</td>" for i, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _pooled_rows(summary: dict) -> list[list]:
    rows = []
    for key, name in (("pooled", f"pooled voxels, protocol {summary['protocol']}"), ("pooled_exact", "pooled voxels, exact")):
        if key in summary:
            p = summary[key]
            rows.append([html.escape(name), _fmt(p["average_precision"]), _fmt(p["best_dice"]), _fmt(p["best_threshold"], 5),
                         _fmt(p["n_positive"]), _fmt(p["n_negative"])])
    return rows


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _band_rows(rows: list[dict]) -> tuple[list[str], list[list]]:
    tops = [k[:-len("_share")] for k in rows[0] if k.startswith("top_") and k.endswith("_share")]
    header = ["band", "share of lesion-free brain", "mean lesion-free score"]
    for top in tops:
        label = top[len("top_"):-len("pct")] + " %"
        header += [f"share of top {label}", f"ratio (top {label})"]
    body = []
    for row in rows:
        cells = [html.escape(row["band"]), _percent(row["brain_share"]), _fmt(row["healthy_mean"], 4)]
        for top in tops:
            cells += [_percent(row[f"{top}_share"]), _fmt(row[f"{top}_ratio"], 2)]
        body.append(cells)
    return header, body


def _error_section(summary: dict, figures: dict[str, str]) -> list[str]:
    """Where the false positives are, the score distributions and volume-level detection."""
    analysis = summary["error_analysis"]
    fp = analysis["false_positives"]
    parts = ["<h2>Error analysis</h2>",
             f"<p>Of the 0.1 % highest-scoring lesion-free brain voxels (the false positives at any useful "
             f"threshold), <b>{_percent(fp['rim_share']['top_0.1pct'])}</b> lie within 2 mm of the brain boundary, "
             f"which holds {_percent(fp['rim_brain_share'])} of the lesion-free brain (ratio "
             f"{_fmt(fp['rim_ratio'], 2)}; about 1 when errors are spread evenly).</p>"]
    for key, title in (("by_distance_to_boundary", "By distance to the brain boundary"),
                       ("by_axial_position", "By axial position, inferior (0 %) to superior (100 %) of the brain")):
        header, rows = _band_rows(fp[key])
        parts += [f"<h3>{title}</h3>", _table(header, rows)]
    parts.append(f"<figure><img src=\"{quote(figures['false_positives'])}\" alt=\"false positives per band\">"
                 f"<figcaption>Shares of the highest-scoring lesion-free voxels per band next to the band's share "
                 f"of the brain.</figcaption></figure>")
    if fp["cases_holding_top"]:
        listed = ", ".join(f"{html.escape(c['case_id'])} ({_percent(c['share'])})" for c in fp["cases_holding_top"])
        parts.append(f"<p>Cases holding most of the top 0.1 %: {listed}.</p>")
    rows = []
    for name, dist in analysis["score_distributions"].items():
        lesion, healthy = dist["lesion_quantiles"], dist["healthy_quantiles"]
        recall = dist["lesion_recall_at_healthy_top"]
        rows.append([html.escape(name), _fmt(dist["n_lesion"]), _fmt(lesion["50"]), _fmt(lesion["90"]),
                     _fmt(healthy["50"]), _fmt(healthy["99"]), _fmt(healthy["99.9"]),
                     _percent(recall.get("top_1pct")), _percent(recall.get("top_0.1pct"))])
    parts += ["<h3>Score distributions</h3>",
              _table(["voxels of", "lesion voxels", "lesion median", "lesion p90", "lesion-free median",
                      "lesion-free p99", "lesion-free p99.9", "lesion above pooled lesion-free top 1 %",
                      "lesion above pooled lesion-free top 0.1 %"], rows),
              f"<figure><img src=\"{quote(figures['distributions'])}\" alt=\"score distributions\"><figcaption>"
              f"Share of lesion (red) and lesion-free (grey) brain voxels per score bin.</figcaption></figure>"]
    volume = analysis["volume_detection"]
    rows = [[html.escape(name), _fmt(v["n"]), _fmt(v["median"], 5), _fmt(v.get("min", v.get("max")), 5),
             _percent(v.get("above_every_lesion_free"))]
            for name, v in volume.items()]
    parts += ["<h3>Volume-level detection</h3>",
              _table(["cases", "n", "median volume score", "min (lesioned) / max (lesion-free)",
                      "above every lesion-free case"], rows),
              f"<figure><img src=\"{quote(figures['volume_scores'])}\" alt=\"volume scores\"><figcaption>"
              f"Volume score of every case by kind.</figcaption></figure>"]
    return parts


def _operating_section(summary: dict, lesion_rows: list[dict] | None) -> list[str]:
    """The calibrated (or given) threshold: its metrics, per case, and the predicted lesions."""
    point = summary.get("operating_point")
    if point is None:
        return []
    lesion_wise, free = point["lesion_wise"], point["lesion_free_volumes"]
    parts = ["<h2>Operating point</h2>",
             f"<p>Threshold <b>{_fmt(point['threshold'], 5)}</b> ({html.escape(point['threshold_source'])}); "
             f"score &gt; threshold is positive, lesions are 26-connected components"
             + (f", smaller than {point['min_lesion_ml']:g} ml removed" if point.get("min_lesion_ml") else "") + ".</p>",
             _table(["", "Dice", "precision", "recall", "oracle [Dice]"],
                    [["pooled", _fmt(point["pooled"]["dice"]), _fmt(point["pooled"]["precision"]),
                      _fmt(point["pooled"]["recall"]), _fmt(point["oracle"]["best_dice"])],
                     ["mean per case", _fmt(point["per_case_mean"]["dice"]), _fmt(point["per_case_mean"]["precision"]),
                      _fmt(point["per_case_mean"]["recall"]), ""]]),
             _table(["lesion size", "reference lesions", "found", "sensitivity"],
                    [[html.escape(band), _fmt(b["lesions"]), _fmt(b["found"]), _fmt(b["sensitivity"])]
                     for band, b in lesion_wise["sensitivity_by_size"].items()]),
             f"<p>Lesion-wise: sensitivity {_fmt(lesion_wise['sensitivity'])}, precision {_fmt(lesion_wise['precision'])}, "
             f"F1 {_fmt(lesion_wise['f1'])}, false-positive components per volume "
             f"{_fmt(lesion_wise['false_positive_components_per_volume'])}. Lesion-free volumes ({free['volumes']}): "
             f"voxel false-positive rate {_fmt(free['voxel_false_positive_rate'], 6)}.</p>"]
    if "flagged" in point:
        flagged = point["flagged"]
        parts.append(f"<p>Flagged volumes: sensitivity {_fmt(flagged['sensitivity'])} of "
                     f"{flagged['volumes_with_lesions']} with lesions, specificity {_fmt(flagged['specificity'])} of "
                     f"{flagged['lesion_free_volumes']} lesion-free.</p>")
    rows = [[html.escape(case_id), _fmt(c["dice"]), _fmt(c["precision"]), _fmt(c["recall"]),
             f"{c['found_lesions']}/{c['reference_lesions']}", _fmt(c["false_positive_components"])]
            for case_id, c in point["cases"].items()]
    parts.append(_table(["case", "Dice", "precision", "recall", "lesions found", "false-positive components"], rows))
    if lesion_rows:
        shown = lesion_rows[:LESION_ROWS_SHOWN]
        parts.append("<h3>Predicted lesions (lesions.csv)</h3>")
        parts.append(_table(["case", "lesion", "ml", "centroid LPS mm", "max score", "mean score"],
                            [[html.escape(r["case_id"]), r["lesion_id"], _fmt(float(r["volume_ml"]), 3),
                              ", ".join(f"{float(r[k]):.1f}" for k in ("centroid_x_mm", "centroid_y_mm", "centroid_z_mm")),
                              _fmt(float(r["max_score"]), 4), _fmt(float(r["mean_score"]), 4)] for r in shown]))
        if len(lesion_rows) > len(shown):
            parts.append(f"<p class=muted>The first {len(shown)} of {len(lesion_rows)} lesions; lesions.csv lists all."
                         f"</p>")
    return parts


def render_index(summary: dict, pr_curve: str, case_figures: dict[str, str],
                 error_figures: dict[str, str], lesion_rows: list[dict] | None = None) -> str:
    """The page: summary tables, the PR curve, per-kind and per-case tables, every case's sheet."""
    mean = summary["mean_per_case"]
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>disyre_v2 evaluation</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>disyre_v2 evaluation</h1>",
             f"<p>Protocol <b>{html.escape(summary['protocol'])}</b>, {summary['n_cases']} test cases; "
             f"predictions <code>{html.escape(str(summary['folders']['predictions']))}</code>, labels "
             f"<code>{html.escape(str(summary['folders']['references']))}</code>.</p>",
             "<h2>Voxel level</h2>",
             _table(["", "AP", "[Dice]", "threshold", "anomalous voxels", "normal voxels"], _pooled_rows(summary)),
             f"<p>Mean over the {mean['n_cases']} cases with a lesion: Dice at the pooled threshold "
             f"{_fmt(mean['dice'])}, AP {_fmt(mean['average_precision'])}.</p>",
             f"<figure><img src=\"{quote(pr_curve)}\" alt=\"precision-recall curve\"><figcaption>Precision-recall "
             f"curve of all brain voxels pooled (exact protocol); dots mark the best Dice, grey lines are iso-Dice."
             f"</figcaption></figure>",
             "<h2>Volume and slice level</h2>"]
    rows = []
    for key, name in (("volume_level", "volumes"), ("slice_level", "axial slices")):
        m = summary[key]
        rows.append([name, _fmt(m["auroc"]), _fmt(m["average_precision"]), _fmt(m["n_anomalous"]), _fmt(m["n_normal"])])
    parts.append(_table(["", "AUROC", "AP", "anomalous", "normal"], rows))
    parts.append(f"<p class=muted>Volume score: {html.escape(summary['volume_level']['score'])}. Slice score: "
                 f"{html.escape(summary['slice_level']['slice_score'])}.</p>")
    if "per_kind" in summary:
        parts.append("<h2>Per lesion kind</h2>")
        rows = [[html.escape(kind), _fmt(k["n_cases"]), _fmt(k["average_precision"]), _fmt(k["best_dice"]),
                 _fmt(k["dice_at_pooled_threshold"]), _fmt(k["mean_per_case"]["dice"]),
                 _fmt(k["predicted_fraction_at_pooled_threshold"]), _fmt(k["volume_level"]["auroc"])]
                for kind, k in summary["per_kind"].items()]
        parts.append(_table(["kind", "cases", "AP", "[Dice]", "Dice at pooled thr.", "mean case Dice",
                             "brain flagged", "volume AUROC vs lesion-free"], rows))
    parts += _operating_section(summary, lesion_rows)
    parts += _error_section(summary, error_figures)
    parts.append("<h2>Per case</h2>")
    rows = []
    for case in summary["per_case"]:
        name = html.escape(case["case_id"])
        link = f"<a href=\"#case-{quote(case['case_id'])}\">{name}</a>" if case["case_id"] in case_figures else name
        rows.append([link, html.escape(case.get("kind", "") or ""), _fmt(case["average_precision"]), _fmt(case["dice"]),
                     _fmt(case["lesion_volume_ml"], 3), _fmt(case["predicted_voxels"]), _fmt(case["volume_score"], 5)])
    parts.append(_table(["case", "kind", "AP", "Dice", "lesion ml", "flagged voxels", "volume score"], rows))
    parts.append(f"<p class=muted>Dice at the pooled threshold {_fmt(summary['per_case_threshold'], 5)} "
                 f"(score &ge; threshold is anomalous); AP of each case's brain voxels alone.</p>")
    parts.append("<h2>Cases</h2><p class=muted>Green: lesion outline. Red: map at or above the pooled threshold. "
                 + ("Cyan: outline of the binary mask at the operating point. " if "operating_point" in summary else "") +
                 "Rows: the slice with the most lesion, and the brain slice without lesion with the most brain."
                 "</p>")
    for case_id, figure in case_figures.items():
        parts.append(f"<figure id=\"case-{html.escape(quote(case_id))}\"><img src=\"{quote(figure)}\" "
                     f"alt=\"{html.escape(case_id)}\" loading=lazy><figcaption>{html.escape(case_id)}</figcaption></figure>")
    parts.append("<h2>Test list</h2><p class=cases>" + ", ".join(html.escape(c) for c in summary["case_ids"]) + "</p>")
    parts.append(f"<p class=muted>disyre_v2 {html.escape(str(summary['settings']['disyre_v2_version']))}; "
                 f"summary.json holds every number on this page.</p></body></html>\n")
    return "\n".join(parts)
