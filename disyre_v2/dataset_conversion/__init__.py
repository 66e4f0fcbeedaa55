"""Converters from public datasets and plain folders to the raw layout, and the synthetic benchmark."""
