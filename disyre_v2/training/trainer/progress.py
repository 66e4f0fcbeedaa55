"""Training curves: kept in the checkpoint (so a resumed run continues them) and drawn to progress.png."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from disyre_v2.imageio.atomic import atomic_path  # noqa: E402


class ProgressLog:
    KEYS = ("train_step", "train_loss", "learning_rate", "step_time", "val_step", "val_loss")

    def __init__(self):
        self.values: dict[str, list[float]] = {key: [] for key in self.KEYS}

    def log_train(self, step: int, loss: float, learning_rate: float, step_time: float) -> None:
        for key, value in zip(self.KEYS[:4], (step, loss, learning_rate, step_time)):
            self.values[key].append(float(value))

    def log_validation(self, step: int, loss: float) -> None:
        self.values["val_step"].append(float(step))
        self.values["val_loss"].append(float(loss))

    def state_dict(self) -> dict:
        return {key: list(values) for key, values in self.values.items()}

    def load_state_dict(self, state: dict) -> None:
        self.values = {key: [float(v) for v in state.get(key, [])] for key in self.KEYS}

    def plot(self, path: Path | str) -> Path:
        path = Path(path)
        v = self.values
        figure, axes = plt.subplots(1, 3, figsize=(15, 4))
        axes[0].plot(v["train_step"], v["train_loss"], lw=0.6, label="train (batch)")
        if v["val_step"]:
            axes[0].plot(v["val_step"], v["val_loss"], "o-", label="validation")
        axes[0].set(xlabel="step", ylabel="MSE", yscale="log", title="restoration loss")
        axes[0].legend()
        axes[1].plot(v["train_step"], v["learning_rate"])
        axes[1].set(xlabel="step", title="learning rate")
        axes[2].plot(v["train_step"], v["step_time"], lw=0.6)
        axes[2].set(xlabel="step", ylabel="s", title="step time")
        figure.tight_layout()
        try:
            with atomic_path(path, ".png") as tmp:
                figure.savefig(tmp, dpi=80)
        finally:
            plt.close(figure)
        return path
