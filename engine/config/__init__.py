"""Configuration: the pydantic models (each setting defined once), the settings view the CLI, form and README read, and presets."""
