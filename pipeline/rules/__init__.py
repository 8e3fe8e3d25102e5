"""Rules: the model, loading with locations, lint, and the inline rule tests."""
