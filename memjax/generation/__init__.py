"""Text generation with the trained models: caches, incremental decoding, sampling.

Kept apart from the training models, whose parameters (and block modules) it reuses.
"""
