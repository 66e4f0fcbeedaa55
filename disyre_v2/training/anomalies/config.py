"""Parameters of the anomaly synthesis, read from plans.json (method_numbers.md ("Anomaly synthesis")).

Every number of the synthesis comes from the configuration's ``anomaly_synthesis`` dict and its
``tissue_centroids``; nothing is hard-coded in the drawing code. Sizes in the plans are already
scaled by P/128.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Mapping, Sequence

SHAPE_KINDS = ("rectangle", "disc", "irregular")
# Keys that plans written by earlier versions lack, with the value that reproduces them.
OPTIONAL_KEYS = {"anomaly_probability": 1.0, "restrict_to_brain": True, "rectangle_rotation_probability": 0.0,
                 "irregular_extent_range": None, "min_brain_fraction": 0.25}


class AnomalySynthesisConfigError(ValueError):
    """A bad ``anomaly_synthesis`` / ``tissue_centroids`` entry of plans.json."""


@dataclass(frozen=True)
class ModeSpec:
    """Which parts of DAG a synthesis mode uses."""

    texture: bool  # foreign-patch blending, eq. (1)
    rescale: bool  # rescale the foreign patch to the target's min/max in the mask support
    bias: bool  # intensity bias, eq. (2)
    tissue: bool  # restrict the bias to one tissue cluster (else the whole mask)


# The variants of method_numbers.md ("Anomaly synthesis"), selectable by name.
MODES: dict[str, ModeSpec] = {
    "dag": ModeSpec(texture=True, rescale=True, bias=True, tissue=True),
    "fpi": ModeSpec(texture=True, rescale=False, bias=False, tissue=False),
    "texture_only": ModeSpec(texture=True, rescale=True, bias=False, tissue=False),
    "bias_only": ModeSpec(texture=False, rescale=False, bias=True, tissue=True),
    "dag_no_tissue": ModeSpec(texture=True, rescale=True, bias=True, tissue=False),
    "none": ModeSpec(texture=False, rescale=False, bias=False, tissue=False),
}


def _fail(key: str, problem: str) -> AnomalySynthesisConfigError:
    return AnomalySynthesisConfigError(
        f"plans.json anomaly_synthesis.{key}: {problem}. Fix the entry in plans.json (or re-run "
        f"planning to regenerate it)."
    )


def _range(raw: Mapping, key: str, low: float, high: float | None) -> tuple[float, float]:
    value = raw[key]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail(key, f"expected [min, max], got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not (a <= b and a >= low and (high is None or b <= high)):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise _fail(key, f"need min <= max within {bounds}, got {value!r}")
    return a, b


@dataclass(frozen=True)
class AnomalySynthesisConfig:
    # No defaults: the numbers live in plans.json (written by the planner), not here.
    mode: str
    canvas_size: int
    shape_probabilities: tuple[tuple[str, float], ...]
    shape_size_range: tuple[int, int]
    irregular_rotation_deg: float
    irregular_zoom_range: tuple[float, float]
    irregular_library_size: int
    blur_probability: float
    blur_sigma_range: tuple[float, float]
    alpha_text_range: tuple[float, float]
    alpha_bias_range: tuple[float, float]
    tissue_sigma: float
    foreign_patch_cache_size: int
    # Per channel, ascending, normalised intensity units (plans.json "tissue_centroids").
    tissue_centroids: tuple[tuple[float, ...], ...] = field(default=())
    # Share of samples that receive their anomaly; the others stay clean with the level t they drew
    # (optional in plans.json: absent means 1.0, every sample corrupted).
    anomaly_probability: float = 1.0
    # True: the shape mask is zeroed outside the brain (method_numbers.md ("Anomaly synthesis")); False: an anomaly near the
    # edge reaches across the brain boundary into the background of the corrupted input.
    restrict_to_brain: bool = True
    # With this probability a rectangle is rotated by an angle drawn uniformly in [0, 180) degrees.
    rectangle_rotation_probability: float = 0.0
    # The blob's largest extent before the irregular zoom, drawn uniformly in this range (px); None
    # (plans before the key existed): half the largest shape size, as earlier versions did.
    irregular_extent_range: tuple[float, float] | None = None
    # A sample whose patch holds fewer brain pixels than this fraction of the C×C canvas area gets no
    # anomaly (t = 0, input = target): the top and bottom slices teach "leave it unchanged".
    min_brain_fraction: float = 0.25

    @property
    def spec(self) -> ModeSpec:
        return MODES[self.mode]

    @property
    def shape_kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.shape_probabilities)

    @property
    def shape_weights(self) -> tuple[float, ...]:
        return tuple(p for _, p in self.shape_probabilities)

    def with_mode(self, mode: str) -> "AnomalySynthesisConfig":
        """The same parameters under another synthesis mode (the trainer variants)."""
        if mode not in MODES:
            raise _fail("mode", f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        return replace(self, mode=mode)

    def to_dict(self) -> dict:
        """The ``anomaly_synthesis`` dict of plans.json (centroids are stored separately)."""
        out = {}
        for f in fields(self):
            if f.name == "tissue_centroids":
                continue
            value = getattr(self, f.name)
            if f.name == "shape_probabilities":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_plans(
        cls,
        anomaly_synthesis: Mapping,
        tissue_centroids: Sequence[Sequence[float]] | None,
        mode: str | None = None,
    ) -> "AnomalySynthesisConfig":
        """Build from a configuration's ``anomaly_synthesis`` dict and ``tissue_centroids``.

        ``mode`` overrides the plans' mode (used by trainer variants such as FPI).
        """
        raw = dict(anomaly_synthesis)
        expected = {f.name for f in fields(cls)} - {"tissue_centroids"}
        missing = sorted(expected - raw.keys() - set(OPTIONAL_KEYS))
        unknown = sorted(raw.keys() - expected)
        if missing:
            raise _fail(missing[0], f"missing key(s) {missing}")
        if unknown:
            raise _fail(unknown[0], f"unknown key(s) {unknown}; known keys are {sorted(expected)}")
        if mode is not None:
            raw["mode"] = mode
        if raw["mode"] not in MODES:
            raise _fail("mode", f"unknown mode {raw['mode']!r}; choose one of {', '.join(MODES)}")

        canvas = int(raw["canvas_size"])
        if canvas < 4:
            raise _fail("canvas_size", f"must be at least 4 px, got {raw['canvas_size']!r}")

        probs = raw["shape_probabilities"]
        if not isinstance(probs, Mapping) or set(probs) - set(SHAPE_KINDS) or not probs:
            raise _fail("shape_probabilities", f"expected a dict over {SHAPE_KINDS}, got {probs!r}")
        weights = [float(p) for p in probs.values()]
        if min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-3:
            raise _fail("shape_probabilities", f"need non-negative values summing to 1, got {probs!r}")
        total = sum(weights)
        shape_probabilities = tuple((k, float(p) / total) for k, p in probs.items())

        size_lo, size_hi = _range(raw, "shape_size_range", 1, canvas)
        if size_lo != int(size_lo) or size_hi != int(size_hi):
            raise _fail("shape_size_range", f"sizes are whole pixels, got {raw['shape_size_range']!r}")
        zoom = _range(raw, "irregular_zoom_range", 1e-3, None)
        for key, default in OPTIONAL_KEYS.items():
            raw.setdefault(key, default)
        if not isinstance(raw["restrict_to_brain"], bool):
            raise _fail("restrict_to_brain", f"true or false, got {raw['restrict_to_brain']!r}")
        for key in ("blur_probability", "anomaly_probability", "rectangle_rotation_probability", "min_brain_fraction"):
            if not 0.0 <= float(raw[key]) <= 1.0:
                raise _fail(key, f"a probability in [0, 1], got {raw[key]!r}")
        if float(raw["tissue_sigma"]) < 0:
            raise _fail("tissue_sigma", f"must be >= 0, got {raw['tissue_sigma']!r}")
        if int(raw["irregular_library_size"]) < 1:
            raise _fail("irregular_library_size", f"must be >= 1, got {raw['irregular_library_size']!r}")
        if int(raw["foreign_patch_cache_size"]) < 0:
            raise _fail("foreign_patch_cache_size", f"must be >= 0, got {raw['foreign_patch_cache_size']!r}")

        centroids = tuple(tuple(float(c) for c in channel) for channel in (tissue_centroids or ()))
        for ch, channel in enumerate(centroids):
            if len(channel) < 1 or any(b < a for a, b in zip(channel, channel[1:])):
                raise AnomalySynthesisConfigError(
                    f"plans.json tissue_centroids[{ch}]: need at least one centroid in ascending "
                    f"order, got {list(channel)}. Re-run planning to refit the tissue clusters."
                )
        if MODES[raw["mode"]].tissue and not centroids:
            raise AnomalySynthesisConfigError(
                f"plans.json tissue_centroids is empty, but mode {raw['mode']!r} needs tissue clusters. "
                f"Re-run planning to fit them, or choose mode 'dag_no_tissue'."
            )

        return cls(
            mode=raw["mode"],
            canvas_size=canvas,
            shape_probabilities=shape_probabilities,
            shape_size_range=(int(size_lo), int(size_hi)),
            irregular_rotation_deg=float(raw["irregular_rotation_deg"]),
            irregular_zoom_range=zoom,
            irregular_library_size=int(raw["irregular_library_size"]),
            blur_probability=float(raw["blur_probability"]),
            blur_sigma_range=_range(raw, "blur_sigma_range", 0.0, None),
            alpha_text_range=_range(raw, "alpha_text_range", 0.0, 1.0),
            alpha_bias_range=_range(raw, "alpha_bias_range", 0.0, 1.0),
            tissue_sigma=float(raw["tissue_sigma"]),
            foreign_patch_cache_size=int(raw["foreign_patch_cache_size"]),
            tissue_centroids=centroids,
            anomaly_probability=float(raw["anomaly_probability"]),
            restrict_to_brain=raw["restrict_to_brain"],
            rectangle_rotation_probability=float(raw["rectangle_rotation_probability"]),
            min_brain_fraction=float(raw["min_brain_fraction"]),
            irregular_extent_range=(None if raw["irregular_extent_range"] is None
                                    else _range(raw, "irregular_extent_range", 1e-3, None)),
        )
