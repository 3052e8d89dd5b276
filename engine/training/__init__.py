"""The training loops: one run, or a stack of runs trained as one model, each reporting a stream of typed events."""
