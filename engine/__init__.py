"""lm-explorer's engine: corpus, model, objectives, metrics, training, generation, checkpoints.

Nothing in this package imports Textual or the ``tui`` package; both front ends (the Textual app
and the headless CLI) talk to the engine only through the modules here.
"""

__version__ = "0.1.0"
