"""lm-explorer's terminal app: a Textual front end over the ``engine`` package.

Importing this package (or :mod:`tui.app`) does not import torch: the engine modules that need
it are imported inside worker threads, so the first frame paints before torch has loaded.
"""
