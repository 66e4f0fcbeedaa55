"""Share a trained model: export a model folder to one deterministic zip (weights, plans, calibrations,
a manifest with every file's SHA-256, a model card), and install such a zip into ``$DISYRE_results``
after checking it as untrusted input. ``documentation/how_to/share_model.md`` is the user's page."""
