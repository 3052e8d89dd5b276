"""lm-explorer's engine: corpus, model, objectives, metrics, training, generation, checkpoints.

Nothing in this package imports Textual or the ``tui`` package; both front ends (the Textual app
and the headless CLI) talk to the engine only through the modules here.

OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, unless the environment says
otherwise): by default torch's OpenMP threads spin at every barrier, and when other processes
share the cores a spinning thread takes the CPU the working one needs (measured:
``docs/design/threads.md``). OpenMP reads the setting once, when torch loads, so it is set here, before anything imports torch.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
