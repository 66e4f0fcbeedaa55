"""r-VAE (Chen et al., MedIA 2020; UPD's restoration): the TV term, the gradient steps on known
quadratics, batch independence, the predictor's refusals, and RVaeTrainer through the CLI."""
from pathlib import Path

import numpy as np
import pytest
import torch

from disyre_v2.errors import UserError
from disyre_v2.inference.latent_restoration import (RestorationSettings, restoration_objective, restoration_score,
                                                    restore, total_variation)
from disyre_v2.inference.model_loading import LoadedModel
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.run import predict as predict_cli
from disyre_v2.training.network.vae import ConvVAE
from disyre_v2.training.run_training import train
from disyre_v2.training.trainer.baselines import VaeTrainer
from disyre_v2.training.trainer.checkpoint import load_checkpoint
from disyre_v2.training.trainer.registry import get_trainer_class
from disyre_v2.training.trainer.rvae import RVaeTrainer
from tests.test_comparison_cli import dataset, env, predict_and_evaluate  # noqa: F401 (fixtures)
from tests.test_predictor import Identity, plans_for
from tests.trainer_fixtures import crash_then_resume


def laplacian(height: int, width: int) -> np.ndarray:
    """The 4-neighbour graph Laplacian L of a height × width grid, built edge by edge: Σ_edges (d_i − d_j)² = dᵀLd."""
    n = height * width
    matrix = np.zeros((n, n))
    for y in range(height):
        for x in range(width):
            for dy, dx in ((1, 0), (0, 1)):
                if y + dy < height and x + dx < width:
                    i, j = y * width + x, (y + dy) * width + x + dx
                    matrix[i, i] += 1
                    matrix[j, j] += 1
                    matrix[i, j] -= 1
                    matrix[j, i] -= 1
    return matrix


class QuadraticVae(torch.nn.Module):
    """A handmade "VAE": μ_j = s · Σ x for each of J latent dimensions, log σ² = 0, and a decoder that
    returns a fixed template c. Then E(x_r) = ‖x_r − c‖² + β (N/J) · J · ½ (s Σ x_r)² + λ TV(x_r − x),
    whose gradient is 2(x_r − c) + β N s² Σ x_r + 2λ L (x_r − x)."""

    def __init__(self, template: torch.Tensor, scale: float = 0.0, latent: int = 3):
        super().__init__()
        self.template, self.scale, self.latent = template, scale, latent
        self.eval()

    def encode(self, x):
        mean = self.scale * x.flatten(1).sum(1, keepdim=True).expand(-1, self.latent)
        return mean, torch.zeros_like(mean)

    def decode(self, z):
        return self.template.expand(z.shape[0], *self.template.shape[1:]) + 0 * z.sum()


# -- the TV term -------------------------------------------------------------------------------
def test_total_variation_exact_value_and_gradient():
    d = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 0.0]]]], requires_grad=True)  # (1, 1, 2, 3)
    # along height: (2−0)², (2−1)², (0−3)²; along width: (1−0)², (3−1)², (2−2)², (0−2)²
    value = total_variation(d)
    assert value.shape == (1,) and value.item() == pytest.approx(4 + 1 + 9 + 1 + 4 + 0 + 4)
    (gradient,) = torch.autograd.grad(value.sum(), d)
    expected = 2 * laplacian(2, 3) @ d.detach().numpy().reshape(-1)  # ∂(dᵀLd)/∂d = 2Ld
    np.testing.assert_allclose(gradient.numpy().reshape(-1), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(expected, [-6, -4, 10, 4, 6, -10])  # by hand, e.g. d₀: 2·((0−1) + (0−2))
    # Per sample, summed over channels; a constant shift costs nothing.
    two = torch.stack([d.detach()[0], d.detach()[0] + 5.0]).repeat(1, 2, 1, 1)  # (2, 2, 2, 3)
    np.testing.assert_allclose(total_variation(two).numpy(), [2 * 23.0, 2 * 23.0])


# -- the gradient steps ------------------------------------------------------------------------
def test_no_steps_or_no_step_size_restore_nothing():
    x = torch.rand(2, 2, 4, 4)
    vae = QuadraticVae(torch.zeros(1, 2, 4, 4))
    for settings in (RestorationSettings(steps=0), RestorationSettings(steps=5, step_size=0.0)):
        scores, restored = restoration_score(vae, settings)(x)
        torch.testing.assert_close(restored, x, rtol=0, atol=0)
        assert scores.shape == (2, 4, 4) and (scores == 0).all()


def test_one_and_two_steps_on_a_known_quadratic():
    """One step from x_r = x: the TV gradient is 0 there, so x₁ = x − α clip(2(x − c) + βNs²Σx, ±50);
    the second step adds the TV gradient 2λL(x₁ − x)."""
    x = torch.tensor([[[[0.2, 0.5, 0.9], [0.4, 0.1, 0.7]]]])  # (1, 1, 2, 3): N = 6
    c = torch.tensor([[[[0.3, 0.3, 0.3], [0.6, 0.6, -30.0]]]])  # the last pixel's gradient is clipped at 50
    s, beta, lam, alpha = 0.5, 0.1, 2.0, 0.01
    settings = RestorationSettings(steps=1, step_size=alpha, tv_weight=lam, kl_weight=beta)
    vae = QuadraticVae(c, scale=s)
    xs, cs = x.numpy().reshape(-1).astype(np.float64), c.numpy().reshape(-1).astype(np.float64)

    def gradient(xr):
        return np.clip(2 * (xr - cs) + beta * 6 * s**2 * xr.sum() + 2 * lam * laplacian(2, 3) @ (xr - xs), -50, 50)

    first = xs - alpha * gradient(xs)
    assert gradient(xs)[-1] == 50  # the clip binds
    np.testing.assert_allclose(restore(vae, x, settings).numpy().reshape(-1), first, rtol=0, atol=1e-6)
    second = first - alpha * gradient(first)
    two = RestorationSettings(steps=2, step_size=alpha, tv_weight=lam, kl_weight=beta)
    np.testing.assert_allclose(restore(vae, x, two).numpy().reshape(-1), second, rtol=0, atol=1e-6)
    # The objective itself: ‖x − c‖² + β (N/J) · J · ½ (sΣx)² at x_r = x.
    value = restoration_objective(vae, x, x, settings).item()
    assert value == pytest.approx(((xs - cs) ** 2).sum() + beta * 6 * 0.5 * (s * xs.sum()) ** 2, rel=1e-6)


def test_the_restoration_converges_to_the_map_estimate_and_tv_never_fixes_the_mean_shift():
    """Without KL, E = ‖x_r − c‖² + λ (x_r − x)ᵀL(x_r − x) has the minimiser (I + λL) x* = c + λLx.
    As λ → ∞ the restoration does not tend to x: TV leaves a constant shift free, and since 1ᵀL = 0
    the mean of x* − x is mean(c − x) for every λ, so the score tends to |mean(c − x)|, not 0."""
    rng = np.random.default_rng(0)
    x, c = rng.random(9), rng.random(9)
    lap = laplacian(3, 3)
    for lam, alpha, steps in ((1.0, 0.05, 300), (5.0, 0.02, 400)):  # α(2 + 16λ) < 2: stable
        settings = RestorationSettings(steps=steps, step_size=alpha, tv_weight=lam, kl_weight=0.0)
        vae = QuadraticVae(torch.tensor(c, dtype=torch.float32).view(1, 1, 3, 3))
        restored = restore(vae, torch.tensor(x, dtype=torch.float32).view(1, 1, 3, 3), settings).numpy().reshape(-1)
        exact = np.linalg.solve(np.eye(9) + lam * lap, c + lam * lap @ x)
        np.testing.assert_allclose(restored, exact, rtol=0, atol=1e-4)
        assert (exact - x).mean() == pytest.approx((c - x).mean())
    spread = [np.ptp(np.linalg.solve(np.eye(9) + lam * lap, c + lam * lap @ x) - x) for lam in (1.0, 1e3, 1e6)]
    assert spread[0] > 100 * spread[1] > 1e4 * spread[2]  # O(1/λ): x* − x → the constant mean(c − x)


def test_the_score_is_deterministic_and_independent_of_batch_composition():
    torch.manual_seed(0)
    vae = ConvVAE(2, [16, 16], [8, 16], latent_dim=4).eval()
    windows = torch.rand(3, 2, 16, 16)
    score = restoration_score(vae, RestorationSettings(steps=4, step_size=0.01))
    with torch.inference_mode():  # as the predictor calls it
        together, restored = score(windows)
        alone = torch.cat([score(windows[i:i + 1])[0] for i in range(3)])
        reversed_order = score(windows.flip(0))[0].flip(0)
        again = score(windows)[0]
    assert together.abs().max() > 0  # it restored something
    torch.testing.assert_close(together, again, rtol=0, atol=0)
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-6)
    torch.testing.assert_close(reversed_order, together, rtol=0, atol=1e-6)
    torch.testing.assert_close(together, (restored - windows).abs().mean(1))
    assert not any(p.grad is not None for p in vae.parameters())  # only x_r was differentiated


def test_the_defaults_are_upds_and_the_vaes_training_weight():
    settings = RestorationSettings()
    assert (settings.steps, settings.tv_weight, settings.gradient_clip) == (500, 1.2, 50.0)
    assert settings.step_size == pytest.approx(1e3 / (64 * 128 * 128))  # UPD's 10³ on a batch-mean of 64 × 128²
    assert settings.kl_weight == VaeTrainer.kl_weight == RVaeTrainer.kl_weight
    with pytest.raises(ValueError, match=">= 0"):
        RestorationSettings(steps=-1)


# -- the predictor ------------------------------------------------------------------------------
def test_the_predictor_refuses_what_cannot_differentiate_the_vae():
    plans = plans_for(1)
    vae = ConvVAE(1, [16, 16], [8, 16], latent_dim=4).eval()
    rvae = LoadedModel(vae, False, Path("rvae"), RVaeTrainer.scores)
    predictor = DisyrePredictor(plans, "2d_small", [rvae])
    assert predictor.score == "restoration" and predictor.precision == "fp32" and not predictor.compile
    assert predictor.describe()["restoration"]["steps"] == 500
    assert DisyrePredictor(plans, "2d_small", [rvae], score="residual").score == "residual"
    with pytest.raises(UserError, match="--backend onnxruntime cannot give.*use --backend torch"):
        DisyrePredictor(plans, "2d_small", [rvae], backend="onnxruntime")
    with pytest.raises(UserError, match="--compile on does not apply"):
        DisyrePredictor(plans, "2d_small", [rvae], compile=True)
    dae = LoadedModel(Identity(), False, Path("dae"), ("residual",))
    with pytest.raises(ValueError, match="--score restoration does not fit the model dae"):
        DisyrePredictor(plans, "2d_small", [dae], score="restoration")
    with pytest.raises(ValueError, match="needs a VAE"):
        restoration_score(Identity())
    with pytest.raises(ValueError, match="eval mode"):
        restoration_score(ConvVAE(1, [16, 16], [8, 16], latent_dim=4))


# -- through the CLI -----------------------------------------------------------------------------
def test_train_predict_evaluate_rvae(env, monkeypatch, capsys):
    from disyre_v2.run import train as train_cli

    root, name, tmp_path = env
    assert train_cli.main(["1", "2d_small", "all", "-tr", "RVaeTrainer", "--steps", "3"]) == 0
    run = tmp_path / "results" / name / "RVaeTrainer__DisyrePlans__2d_small" / "fold_all_seed_0"
    state = torch.load(run / "checkpoint_final.pth", weights_only=True)
    assert state["trainer_name"] == "RVaeTrainer" and state["scores"] == ["restoration", "residual"]
    # 20 steps instead of 500 keep the test short; the steps' arithmetic is tested above.
    monkeypatch.setattr(DisyrePredictor, "restoration", RestorationSettings(steps=20, step_size=0.01))
    summary, sidecar = predict_and_evaluate(root, name, tmp_path / "maps", "-tr", "RVaeTrainer")
    assert sidecar["score"] == "restoration" and sidecar["levels"] == [] and sidecar["precision"] == "fp32"
    assert sidecar["restoration"]["steps"] == 20 and "volume_level" in summary
    _, residual = predict_and_evaluate(root, name, tmp_path / "residual", "-tr", "RVaeTrainer", "--score", "residual")
    assert residual["score"] == "residual"
    images = str(root / "raw" / name / "imagesTs")
    common = ["-i", images, "-o", str(tmp_path / "refused"), "-d", "1", "-c", "2d_small", "-tr", "RVaeTrainer"]
    for flags, words in ((["--backend", "onnxruntime"], "--backend onnxruntime cannot give"),
                         (["--compile", "on"], "--compile on does not apply"),
                         (["--levels", "25"], "--levels is for --score ensemble or singlestep")):
        assert predict_cli.main([*common, *flags]) == 2
        err = capsys.readouterr().err
        assert words in err and len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not (tmp_path / "refused").exists()


def test_rvae_trains_as_the_vae_and_resumes_exactly(env, monkeypatch):
    root, name, tmp_path = env
    kwargs = dict(seed=2, num_steps=4, val_every=2, deterministic=True)
    straight = train(1, "2d_small", 0, trainer="RVaeTrainer", **kwargs)
    reference = load_checkpoint(straight / "checkpoint_final.pth")["network"]
    vae = load_checkpoint(train(1, "2d_small", 0, trainer="VaeTrainer", **kwargs) / "checkpoint_final.pth")["network"]
    monkeypatch.setenv("DISYRE_results", str(tmp_path / "second"))
    resumed = crash_then_resume(monkeypatch, get_trainer_class("RVaeTrainer"), 2, 1, "2d_small", 0,
                                trainer="RVaeTrainer", **kwargs)
    final = load_checkpoint(resumed / "checkpoint_final.pth")["network"]
    assert final.keys() == reference.keys() == vae.keys()
    for key in reference:
        torch.testing.assert_close(final[key], reference[key], rtol=0, atol=0)
        torch.testing.assert_close(vae[key], reference[key], rtol=0, atol=0)  # VaeTrainer's training, unchanged
