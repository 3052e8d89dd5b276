"""The headless commands (``lm-explorer train``, ``sweep``, …): one module per group, assembled by :mod:`engine.cli.main`."""
