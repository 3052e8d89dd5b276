"""lm-explorer's benchmark suite: ratios against baselines timed in the same run.

``python -m bench [--quick] [--device cpu|cuda|auto] [--data DIR]`` prints one table. Every row
compares a measured value with a baseline measured in the same process or run (several
repetitions, median), states its target and whether it is met. Benchmarks report; they never
assert or fail on slowness.
"""

import engine  # noqa: F401  (before anything loads torch: it sets OpenMP's passive wait, see engine/__init__.py)
