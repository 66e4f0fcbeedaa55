"""splits_final.json: seeded folds of the healthy training cases (the held-out part is for the
validation loss). A file already there is respected, so hand-made splits survive re-planning."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from sklearn.model_selection import KFold

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.planning.defaults import NUM_FOLDS, SPLITS_SEED

logger = logging.getLogger(__name__)


class SplitsError(ValueError):
    """splits_final.json is malformed or names unknown cases."""


def make_splits(case_ids: Sequence[str], num_folds: int = NUM_FOLDS, seed: int = SPLITS_SEED) -> list[dict]:
    """``num_folds`` folds ``{"train": [...], "val": [...]}`` over the sorted case ids (seeded KFold).

    With fewer cases than folds, fold f validates on case f mod n (a warning says so), so that
    folds 0..num_folds−1 always exist; a single case is then both trained and validated on.
    """
    ids = sorted(case_ids)
    if not ids:
        raise SplitsError("There are no training cases to split.")
    if len(ids) >= num_folds:
        folds = KFold(n_splits=num_folds, shuffle=True, random_state=seed).split(ids)
        return [{"train": [ids[i] for i in tr], "val": [ids[i] for i in va]} for tr, va in folds]
    logger.warning("Only %d training case(s) for %d folds: fold f validates on case f mod %d.",
                   len(ids), num_folds, len(ids))
    splits = []
    for fold in range(num_folds):
        val = ids[fold % len(ids)]
        train = [c for c in ids if c != val] or [val]
        splits.append({"train": train, "val": [val]})
    return splits


def load_splits(path: Path | str, case_ids: Sequence[str] | None = None) -> list[dict]:
    """Read and check splits_final.json (cases must be among ``case_ids`` when given)."""
    path = Path(path)
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SplitsError(f"{path} is not valid JSON ({error}). Fix it or delete it to get new splits.") from None
    if not isinstance(splits, list) or not splits or not all(
            isinstance(f, dict) and isinstance(f.get("train"), list) and isinstance(f.get("val"), list) for f in splits):
        raise SplitsError(f"{path} must be a non-empty list of {{\"train\": [...], \"val\": [...]}}; fix it or delete it.")
    if case_ids is not None:
        known = set(case_ids)
        unknown = sorted({c for fold in splits for c in fold["train"] + fold["val"]} - known)
        if unknown:
            raise SplitsError(
                f"{path} names case(s) that are not training cases of the dataset: {', '.join(unknown[:10])}"
                f"{' ...' if len(unknown) > 10 else ''}. Fix the file or delete it to get new splits."
            )
    return splits


def ensure_splits(path: Path | str, case_ids: Sequence[str], num_folds: int = NUM_FOLDS, seed: int = SPLITS_SEED) -> list[dict]:
    """The splits in ``path`` if it exists (checked), else new seeded ones written there."""
    path = Path(path)
    if path.is_file():
        splits = load_splits(path, case_ids)
        logger.info("Using the existing %s (%d folds).", path, len(splits))
        unused = sorted(set(case_ids) - {c for fold in splits for c in fold["train"] + fold["val"]})
        if unused:
            logger.warning("%s leaves %d training case(s) out of every fold (e.g. %s); delete the file to "
                           "split all cases.", path, len(unused), unused[0])
        return splits
    splits = make_splits(case_ids, num_folds, seed)
    write_json_atomic(splits, path)
    return splits
