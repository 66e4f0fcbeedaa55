"""The names of disyre_v2_predict's anomaly scores and what each needs, without importing torch
(the CLI's -h stays fast). A trainer records the scores that fit its models in every checkpoint;
the score functions are in inference/scores.py and inference/model_free.py."""
from __future__ import annotations

# Scores of models trained with the level input t (DISYRE v2, DISYRE v1's multi-step restoration).
LEVEL_SCORES = ("ensemble", "singlestep", "multistep")
# Scores of a trained network: the level scores, |P(x) − x| without level input, the baselines':
# restoration (r-VAE: |x − x_r|, x_r the MAP restoration under the VAE prior, inference/latent_restoration.py)
# and patch_density (CutPaste: Mahalanobis distance of sub-patch features, inference/patch_density.py).
MODEL_SCORES = LEVEL_SCORES + ("unconditional", "residual", "segmentation", "restoration", "patch_density")
# Scores that call parts of the network themselves (not its forward pass) in eager torch: what each
# needs, for the one-line refusal of --backend onnxruntime and --compile on.
EAGER_TORCH_SCORES = {"restoration": "takes gradients through the VAE's encoder and decoder",
                      "patch_density": "runs the CutPaste encoder on sub-patches"}
# Scores that need no model and no training (model_free.py).
MODEL_FREE_SCORES = ("intensity", "joint_histogram")
ALL_SCORES = MODEL_SCORES + MODEL_FREE_SCORES
# Scores that restore nothing, so there are no restorations to save.
NON_RESTORING_SCORES = ("segmentation", "patch_density") + MODEL_FREE_SCORES


def default_scores(conditional: bool) -> tuple[str, ...]:
    """The scores of a model whose checkpoint does not list them (saved before trainers recorded them)."""
    return LEVEL_SCORES if conditional else ("unconditional",)
