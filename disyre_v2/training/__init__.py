"""Data loading, augmentation, anomaly synthesis, severity schedule, network and trainer."""
