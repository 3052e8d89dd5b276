"""Objectives: each term as a value and its derivative, the total objective, the metrics, and the fused output head."""
