"""The app's panels, one per module: setup form, runs list, plots, generation."""
