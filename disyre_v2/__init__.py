"""DISYRE v2: ensembled cold-diffusion restorations for unsupervised anomaly detection."""

__version__ = "0.1.0"
