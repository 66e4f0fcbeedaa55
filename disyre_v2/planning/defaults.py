"""Every number of the method that planning writes into plans.json, in one place.

The values are those of documentation/explanation/method_numbers.md, intensities to inference (the paper, or the authors' reference implementation where
the paper leaves them open). Code reads them from here or, downstream of planning, from plans.json:
never as literals of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PLANS_NAME = "DisyrePlans"
NETWORK_CLASS_NAME = "DisyreUNet"
SLICE_AXIS = 0  # axial slices index axis 0 of the (Z, Y, X) arrays
# Every case is stored in this orientation before anything else (SimpleITK DICOMOrient): ITK's z,
# array axis 0, then runs inferior to superior whatever the input file's voxel order.
ORIENTATION = "LPS"

# --- fingerprint ------------------------------------------------------------------------------
FINGERPRINT_SEED = 1234
# Brain voxels sampled over all training cases together (split evenly between cases), for the
# intensity statistics and the k-Means fit: bounded cost however large the dataset.
INTENSITY_SAMPLE_BUDGET = 1_000_000
INTENSITY_PERCENTILES = (0.5, 2.0, 50.0, 98.0, 99.5)
NUM_TISSUE_CLUSTERS = 5  # method_numbers.md ("Anomaly synthesis"), intensity bias: K = 5 k-Means centroids per modality
KMEANS_N_INIT = 10

# Smallest patch side: the anomaly canvas C = P/2 must hold at least 4 px for the synthesis.
MIN_PATCH_SIDE = 8

# --- normalisation (method_numbers.md ("Intensities")) -----------------------------------------------------------------
NORMALIZATION = {"percentile": 98.0, "domain": "brain", "clip": [0.0, 1.0]}

# --- severity schedule (method_numbers.md ("Severity schedule")) -----------------------------------------------------------
SCHEDULE = {"num_levels": 100, "beta_start": 0.001, "beta_end": 0.2}

# --- anomaly synthesis (method_numbers.md ("Anomaly synthesis")), sizes for a 128 px patch; they scale with P/128 --------------
REFERENCE_PATCH = 128
ANOMALY_MODE = "dag"
ANOMALY_MODES = ("dag", "fpi", "texture_only", "bias_only", "dag_no_tissue", "none")
CANVAS_FRACTION = 0.5  # C = P/2
SHAPE_PROBABILITIES = {"rectangle": 0.3333333, "disc": 0.3333333, "irregular": 0.3333334}
SHAPE_SIZE_RANGE_AT_128 = (10, 44)  # px: rectangle sides, disc diameters
IRREGULAR_ROTATION_DEG = 15.0
# The blob's largest extent before zoom, px at P = 128 (scaled): with zoom 1-2 the irregular areas
# span foci of ~40 px to the whole 64x64 canvas, median ~1,500 px (the reference's distribution).
IRREGULAR_EXTENT_RANGE_AT_128 = (10.0, 80.0)
RECTANGLE_ROTATION_PROBABILITY = 0.5  # rectangles at any angle, as the reference draws them
IRREGULAR_ZOOM_RANGE = (1.0, 2.0)  # a ratio: not scaled
IRREGULAR_LIBRARY_SIZE = 64
MASK_BLUR_PROBABILITY = 0.7
MASK_BLUR_SIGMA_RANGE_AT_128 = (0.0, 5.0)  # px
ALPHA_TEXT_RANGE = (0.0, 1.0)
ALPHA_BIAS_RANGE = (0.0, 1.0)
TISSUE_SIGMA_AT_128 = 1.0  # px, smoothing of the tissue-cluster mask
FOREIGN_PATCH_CACHE_SIZE = 512  # the reference's per-worker cache of foreign crops
ANOMALY_PROBABILITY = 1.0  # share of training samples that receive an anomaly
RESTRICT_ANOMALY_TO_BRAIN = True  # the shape mask is zeroed outside the brain
# Samples with less brain than this fraction of the canvas area stay clean (t = 0): every brain slice
# is trained on, as the predictor scores every one, without 1-pixel "anomalies" at high t.
MIN_BRAIN_FRACTION_OF_CANVAS = 0.25

# --- augmentation before corruption (method_numbers.md ("Anomaly synthesis")) -----------------------------------------------
AUGMENTATION = {
    "mirror_probability": 0.5,
    "rotation_probability": 0.1, "rotation_deg": 15.0,
    "scale_probability": 0.1, "scale_range": [0.75, 1.25],
    "elastic_probability": 0.1,
    "brightness_probability": 0.15, "brightness_range": [0.9, 1.1],
    "gamma_probability": 0.15, "gamma_range": [0.5, 2.0],
    "noise_probability": 0.15, "noise_sigma_max": 0.05,
    "blur_probability": 0.15, "blur_sigma_range": [0.5, 1.5],
}
# The same transforms, none drawn. Measured on the synthetic benchmark at the CPU budget (2,000 steps of
# 2d_small): every augmentation of the list lowers AP, stroke-like AP most (documentation/explanation/
# ablation.md); the paper trained 26 M parameters for ~100,000 steps, where augmentation pays.
NO_AUGMENTATION = {key: (0.0 if key.endswith("_probability") else value) for key, value in AUGMENTATION.items()}

# --- inference (method_numbers.md ("Inference and the anomaly score")) ----------------------------------------------------------------------
INFERENCE = {
    "ensemble_levels": [0, 25, 50, 75],
    "tile_step": 0.25,  # window step as a fraction of P (75 % overlap)
    "gaussian_sigma_scale": 0.125,  # σ = P/8
    "gaussian_min": 0.001,
    "foreground_weighting": True,  # window maps weighted by their brain fraction f: Σ w·f·AS / Σ w
}

# --- splits ---------------------------------------------------------------------------------------
NUM_FOLDS = 5
SPLITS_SEED = 12345


@dataclass(frozen=True)
class ConfigurationDefaults:
    """What distinguishes one configuration from another before the data are looked at."""

    patch: int  # P: the largest patch side; the planner shrinks it to fit the median slice
    min_spacing_mm: float | None  # None: keep the data's spacing; else resample finer axes to this
    widths: tuple[int, ...]
    attention_levels: tuple[int, ...]
    norm_groups: int
    n_volumes: int
    n_slices: int
    training: dict = field(default_factory=dict)
    num_res_blocks_down: int = 2
    num_res_blocks_up: int = 3
    mid_attention: bool = True
    attention_head_dim: int = 8
    time_embed_dim: int = 32
    time_hidden_dim: int = 128
    # Side of the 3D median filter of the anomaly map, voxels of this configuration's spacing (0: off,
    # the paper's raw map): it removes the one-voxel ridges of restoration error along sharp edges.
    median_filter_size: int = 0
    augmentation: dict = field(default_factory=lambda: dict(AUGMENTATION))


_TRAINING_COMMON = {"betas": [0.95, 0.999], "weight_decay": 1e-6, "grad_clip": 1.0, "ema_decay": None}

CONFIGURATIONS: dict[str, ConfigurationDefaults] = {
    # The paper's configuration (method_numbers.md ("Network"), §6): ~26.3 M parameters at P = 128.
    "2d": ConfigurationDefaults(
        patch=128,
        min_spacing_mm=None,
        widths=(32, 64, 96, 128, 256, 256),
        attention_levels=(4,),  # the 8x8 level for P = 128
        norm_groups=32,
        n_volumes=8,
        n_slices=12,
        training={"lr": 1e-4, "warmup_steps": 500, "num_steps": 100_000, **_TRAINING_COMMON},
        # The paper's raw map: the filter was measured only with 2d_small at 2 mm (ablation.md);
        # disyre_v2_predict --median_filter 5 applies the 2 mm recommendation's ~5 mm cube at 1 mm.
        median_filter_size=0,
    ),
    # CPU configuration: 2 mm, P = 64 (the paper's 128 mm field of view at half the pixels).
    "2d_small": ConfigurationDefaults(
        patch=64,
        min_spacing_mm=2.0,
        widths=(16, 32, 64, 128),
        attention_levels=(3,),  # the lowest level only
        norm_groups=8,
        n_volumes=4,
        n_slices=8,
        # One residual block per level each way: 2.14 M parameters (method_numbers.md ("Network"): about 1-2 M) and
        # half the step time of the paper's 2-down/3-up layout at these widths (3.99 M).
        num_res_blocks_down=1,
        num_res_blocks_up=1,
        # lr 1e-3, not method_numbers.md ("Training")'s 2e-4: at 2,000 steps it raised AP on the synthetic benchmark
        # (measured: documentation/explanation/ablation.md).
        training={"lr": 1e-3, "warmup_steps": 200, "num_steps": 3000, **_TRAINING_COMMON},
        median_filter_size=3,  # 6 mm at 2 mm (measured: documentation/explanation/ablation.md)
        augmentation=dict(NO_AUGMENTATION),  # a deviation from method_numbers.md ("Anomaly synthesis"), measured (ablation.md)
    ),
}
