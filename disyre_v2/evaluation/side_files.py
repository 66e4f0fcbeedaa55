"""Small files next to the maps: the predictor's volume scores and the benchmark's lesion kinds."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

VOLUME_SCORES = "volume_scores.csv"
SYNTHETIC_SIDECAR = "synthetic_cases.json"  # written by disyre_v2_make_synthetic_dataset next to labelsTs
VOLUME_SCORE_HEADER = ["case_id", "volume_score"]
FLAG_COLUMNS = ["p_value", "flagged"]


def _volume_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = [cell.strip() for cell in rows[0]] if rows else []
    if header[:2] != VOLUME_SCORE_HEADER or header[2:] not in ([], FLAG_COLUMNS):
        raise ValueError(f"{path} must start with the header line 'case_id,volume_score' (or "
                         f"'case_id,volume_score,p_value,flagged') (found {','.join(rows[0]) if rows else 'an empty file'}).")
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if row and any(cell.strip() for cell in row)]
    for number, row in body:
        if len(row) != len(header):
            raise ValueError(f"{path} line {number}: expected '{','.join(header)}', got {','.join(row)!r}.")
    return header, body


def read_flags(path: Path | str) -> dict[str, bool] | None:
    """{case_id: flagged} from volume_scores.csv of ``disyre_v2_predict --binary``; None without the column
    (cases predicted without --binary have an empty cell and are left out)."""
    header, body = _volume_rows(Path(path))
    if header[2:] != FLAG_COLUMNS:
        return None
    return {row[0].strip(): row[3].strip() == "1" for _, row in body if row[3].strip()}


def read_volume_scores(path: Path | str) -> dict[str, float]:
    """{case_id: score} from a CSV with the header ``case_id,volume_score`` (and optionally
    ``p_value,flagged``, written by ``disyre_v2_predict --binary``)."""
    path = Path(path)
    _, body = _volume_rows(path)
    scores: dict[str, float] = {}
    for number, row in body:
        case_id, value = row[0].strip(), row[1].strip()
        try:
            score = float(value)
        except ValueError:
            raise ValueError(f"{path} line {number}: volume score {value!r} of {case_id} is not a number.") from None
        if not math.isfinite(score):
            raise ValueError(f"{path} line {number}: volume score of {case_id} is {value}; scores must be finite.")
        if case_id in scores:
            raise ValueError(f"{path} lists case {case_id} twice (line {number}).")
        scores[case_id] = score
    return scores


def load_kinds(path: Path | str) -> dict[str, str]:
    """{case_id: kind} from JSON: ``{"case": "kind"}``, ``{"cases": {...}}`` or the synthetic
    benchmark's sidecar (``{"test_kinds": {...}, "cases": {...}}``); a value may also be an object
    with a ``"kind"`` key (a case's info record)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--kinds {path} does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from None
    if isinstance(data, dict) and isinstance(data.get("test_kinds"), dict):
        data = data["test_kinds"]
    elif isinstance(data, dict) and isinstance(data.get("cases"), dict):
        data = data["cases"]
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path} must map case ids to lesion kinds: {{\"case_id\": \"kind\"}} or "
                         f"{{\"cases\": {{\"case_id\": \"kind\"}}}}.")
    kinds = {}
    for case_id, value in data.items():
        if isinstance(value, dict):
            value = value.get("kind")
        if not isinstance(value, str) or not value:
            raise ValueError(f"{path}: the kind of case {case_id} must be a non-empty string (got {value!r}).")
        kinds[str(case_id)] = value
    return kinds
