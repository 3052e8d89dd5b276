"""lm-explorer's engine: corpus, model, objectives, metrics, training, generation, checkpoints.

Nothing in this package imports Textual or the ``tui`` package; both front ends (the Textual app
and the headless CLI) talk to the engine only through the modules here.

OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, unless the environment says
otherwise): by default torch's OpenMP threads spin at every barrier, and when other processes
share the cores a spinning thread takes the CPU the working one needs. Measured on the shared
2-core box under a load of 8: 60 W1 training steps with 2 threads took 77–106 s of wall time
(15–20 s of CPU) spinning, 1.1–1.4 s (0.6 s of CPU) waiting passively, 2.7–4.7 s with 1 thread.
OpenMP reads the setting once, when torch loads, so it is set here, before anything imports torch.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
