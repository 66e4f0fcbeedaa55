"""Synthetic anomalies for training (method_numbers.md ("Anomaly synthesis")): DAG and its variants, as a batchgenerators transform."""
from disyre_v2.training.anomalies.config import MODES, AnomalySynthesisConfig, AnomalySynthesisConfigError
from disyre_v2.training.anomalies.synthesis import AnomalySynthesizer, SynthesisResult
from disyre_v2.training.anomalies.transform import AnomalySynthesisTransform

__all__ = [
    "MODES",
    "AnomalySynthesisConfig",
    "AnomalySynthesisConfigError",
    "AnomalySynthesizer",
    "SynthesisResult",
    "AnomalySynthesisTransform",
]
