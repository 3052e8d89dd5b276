"""Modal screens: the key help and the quit confirmation."""
