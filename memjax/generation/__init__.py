"""Text generation with the trained models: caches, incremental decoding, sampling.

Kept apart from the training models, whose parameters it reuses and whose blocks decode themselves
(their `decode` methods, memjax.models.decoding).
"""
