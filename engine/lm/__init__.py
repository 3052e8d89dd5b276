"""The language model and its data: the corpus, batching, and the models (solo and stacked)."""
