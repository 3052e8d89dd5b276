"""The study's grid, its six figures and the numbers it printed, as plain data.

The study is Durai (2024), "An Analysis of Entropy-Based Techniques in Generative Language
Models", public at github.com/aneeshdurai/Entropy-Based-Techniques-in-Generative-Language-Models.
Its notebook (``Aneesh Durai - STAT 157 Project.ipynb``, commit fff16be1) trains on the first
``Articles*.csv`` it lists (1,214 headlines after dropping "Unknown": ``ArticlesApril2018.csv``) and
prints, at every epoch end, the validation entropy and KL (clipped definitions) and Keras's
training and validation loss. :data:`STUDY_PRINTED` holds its epoch-5 lines; every value is
copied from that notebook's saved output, cell by cell (cited per entry).

The paper's figures were drawn from runs other than the ones whose output the notebook kept
(its Figure 3 has the 0.1 curve ending near 820, the kept output prints 758), so only the printed
numbers are compared, never values read off a figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# -- the grid -----------------------------------------------------------------------------------

ENTROPY_WEIGHTS = (1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6)  # the study's Figure 2 sweep (it ran 1e-11 twice)
KL_WEIGHTS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # Figures 3–6
CONFIDENCE_WEIGHTS = (0.1, 1.0)  # Pereyra et al. 2017, on Bansal's softmax + cross-entropy model
LABEL_SMOOTHING = (0.05, 0.1)  # Szegedy et al. 2016 used ε = 0.1


@dataclass(frozen=True)
class GridRun:
    """One entry of the grid: a name, what it is and the overrides on the ``paper`` preset."""

    key: str
    group: str  # "study", "benchmark" (Bansal's model, which the study proposed) or "standard"
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        loss = self.overrides.get("objective.loss", "mse")
        head = "linear" if loss == "mse" else "softmax"
        regularizer = self.overrides.get("objective.regularizer", "none")
        weight = self.overrides.get("objective.weight")
        term = "" if regularizer == "none" else f" + {weight:g} × {regularizer}"
        return f"{loss}{term} ({head} head)"


def _weighted(prefix: str, regularizer: str, weight: float, group: str, **base: Any) -> GridRun:
    return GridRun(f"{prefix}-{weight:g}", group, {**base, "objective.regularizer": regularizer, "objective.weight": weight})


GRID: tuple[GridRun, ...] = (
    GridRun("control", "study"),
    *(_weighted("entropy", "entropy", w, "study") for w in ENTROPY_WEIGHTS),
    *(_weighted("kl", "kl", w, "study") for w in KL_WEIGHTS),
    GridRun("ce", "benchmark", {"objective.loss": "ce"}),
    *(_weighted("ce-confidence", "confidence", w, "standard", **{"objective.loss": "ce"}) for w in CONFIDENCE_WEIGHTS),
    *(_weighted("ce-label-smoothing", "label-smoothing", w, "standard", **{"objective.loss": "ce"}) for w in LABEL_SMOOTHING),
)
GRID_KEYS = tuple(run.key for run in GRID)

# The same questions where objectives can differ: a softmax head on a cross-entropy base (the ``transformer``
# preset). With p = softmax(z) the study's entropy is H(p) (so + weight × it rewards confidence, the opposite of
# the confidence penalty) and its KL against a one-hot target is −log p_k plus terms within (V−1)·ε·log ε of 0:
# ce + w × kl is about (1 + w) × ce, a rescaled loss that Adam's update all but ignores.
CE = {"objective.loss": "ce"}
SOFTMAX_GRID: tuple[GridRun, ...] = (
    GridRun("ce", "benchmark", CE),
    *(_weighted("ce-entropy", "entropy", w, "study", **CE) for w in (0.1, 1.0)),
    *(_weighted("ce-kl", "kl", w, "study", **CE) for w in (1.0, 10.0)),
    _weighted("ce-confidence", "confidence", 0.1, "standard", **CE),
    _weighted("ce-label-smoothing", "label-smoothing", 0.1, "standard", **CE),
)


@dataclass(frozen=True)
class Study:
    """A grid and the preset its runs use: ``reproduce --arch`` picks one."""

    preset: str
    grid: tuple[GridRun, ...]
    summary: str

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(run.key for run in self.grid)


STUDIES: dict[str, Study] = {
    "lstm": Study(
        "paper",
        GRID,
        "control, entropy and KL sweeps, Bansal's softmax + cross-entropy model, confidence penalty and label smoothing",
    ),
    "transformer": Study(
        "transformer",
        SOFTMAX_GRID,
        "cross-entropy alone and with the study's entropy and KL penalties, the confidence penalty and label smoothing",
    ),
}

# The seed texts of the study's generation tables, and its sampler: top 5, weights ∝ the raw outputs.
STUDY_SEED_TEXTS = ("United States", "President Trump", "Donald Trump", "India and China", "New York", "Science and Technology")
STUDY_TOP_K = 5


def grid_run(key: str) -> GridRun:
    return next(run for run in GRID if run.key == key)


# -- the figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One plot: a metric of the epoch records, the study's title and y-axis label."""

    metric: str
    title: str
    ylabel: str


@dataclass(frozen=True)
class FigureSpec:
    """A figure as the study drew it: its caption, its lines (grid key → legend label), its panels."""

    number: int
    caption: str
    lines: tuple[tuple[str, str], ...]
    panels: tuple[Panel, ...]
    legend_title: str | None = "Regularization Weights"
    study: bool = True


def _weight_label(weight: float) -> str:
    """The study's legend text, ``f'Weight = {rate}'`` with Python's float repr (``1e-05``, ``10.0``)."""
    return f"Weight = {weight!r}"


SWEEP_TITLE = "{} by Epoch for Different Regularization Weights"
_KL_LINES = tuple((f"kl-{w:g}", _weight_label(w)) for w in KL_WEIGHTS)

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        1,
        "Control Model vs. Entropy Regularized Model Performance (entropy weight 1e-7)",
        (("control", "Control Model"), ("entropy-1e-07", "Modified Model")),
        (Panel("entropy", "Entropies over Epochs", "Entropies"), Panel("kl", "KL Divergence over Epochs", "KL Divergence")),
        legend_title=None,
    ),
    FigureSpec(
        2,
        "Performance of Entropy Regularization for Different Weights",
        tuple((f"entropy-{w:g}", _weight_label(w)) for w in ENTROPY_WEIGHTS),
        (
            Panel("entropy", SWEEP_TITLE.format("Entropy"), "Entropy"),
            # the study's own title for its KL panel, word for word
            Panel("kl", "Entropy by KL Divergences for Different Regularization Weights", "KL Divergences"),
        ),
    ),
    FigureSpec(
        3,
        "Entropies of KL Divergence Regularization for Different Weights",
        _KL_LINES,
        (Panel("entropy", SWEEP_TITLE.format("Entropy"), "Entropy"),),
    ),
    FigureSpec(
        4,
        "KL Divergences of KL Divergence Regularization for Different Weights",
        _KL_LINES,
        (Panel("kl", SWEEP_TITLE.format("KL Divergence"), "KL Divergences"),),
    ),
    FigureSpec(
        5,
        "Training Loss of KL Divergence Regularization for Different Weights",
        _KL_LINES,
        (Panel("train_loss", SWEEP_TITLE.format("Training Loss"), "Training Loss"),),
    ),
    FigureSpec(
        6,
        "Validation Loss of KL Divergence Regularization for Different Weights",
        _KL_LINES,
        (Panel("val_loss", SWEEP_TITLE.format("Validation Loss"), "Validation Loss"),),
    ),
    FigureSpec(
        7,
        "What the study did not plot: accuracy and distinct predictions",
        (
            ("control", "control (mse)"),
            ("entropy-1e-07", "entropy 1e-7"),
            ("kl-1", "kl 1"),
            ("kl-10", "kl 10"),
            ("kl-100", "kl 100"),
            ("ce", "ce (Bansal)"),
            ("ce-confidence-0.1", "ce + confidence 0.1"),
            ("ce-label-smoothing-0.1", "ce + label smoothing 0.1"),
        ),
        (
            Panel("accuracy", "Validation accuracy by epoch", "Top-1 accuracy"),
            Panel("distinct_predictions", "Distinct argmax words on validation by epoch", "Distinct predictions"),
        ),
        legend_title=None,
        study=False,
    ),
)

# -- the study's printed numbers ----------------------------------------------------------------

NOTEBOOK = "the study's notebook (aneeshdurai/Entropy-Based-Techniques-in-Generative-Language-Models @ fff16be1)"


@dataclass(frozen=True)
class Printed:
    """The study's epoch-5 line for one run: validation entropy and KL, training and validation loss."""

    entropy: float
    kl: float
    train_loss: float
    val_loss: float
    source: str

    def values(self) -> dict[str, float]:
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, "entropy": self.entropy, "kl": self.kl}


STUDY_PRINTED: dict[str, Printed] = {
    "control": Printed(10.272432327270508, 9.45444393157959, 0.00028580703656189144, 0.0002858156803995371, "cell 10"),
    "entropy-1e-07": Printed(
        5.947267055511475,
        11.245532989501953,
        0.00028633151669055223,
        0.00028630689484998584,
        "cell 11 (Figure 1's modified model)",
    ),
    "entropy-1e-11": Printed(
        10.41033935546875,
        9.553826332092285,
        0.00028578354977071285,
        0.00028583305538631976,
        "cell 18, first of its two 1e-11 runs",
    ),
    "entropy-1e-10": Printed(10.290568351745605, 9.393205642700195, 0.0002858025545720011, 0.00028580339858308434, "cell 18"),
    "entropy-1e-09": Printed(10.343785285949707, 9.510765075683594, 0.0002858245570678264, 0.00028582560480572283, "cell 18"),
    "entropy-1e-08": Printed(9.352816581726074, 9.767219543457031, 0.00028588034911081195, 0.00028587106498889625, "cell 18"),
    "entropy-1e-06": Printed(1.1369473934173584, 12.982088088989258, 0.0002871483447961509, 0.0002872045151889324, "cell 18"),
    "kl-1e-05": Printed(50.315582275390625, 7.621884346008301, 0.0003781549457926303, 0.0003970203106291592, "cell 26"),
    "kl-0.0001": Printed(119.87715911865234, 6.348662853240967, 0.0008940615807659924, 0.0010611623292788863, "cell 26"),
    "kl-0.001": Printed(220.74832153320312, 5.000452995300293, 0.004157369956374168, 0.0057233721017837524, "cell 26"),
    "kl-0.01": Printed(450.7411804199219, 3.4263548851013184, 0.02751309797167778, 0.03836129978299141, "cell 26"),
    "kl-0.1": Printed(757.56494140625, 2.4069130420684814, 0.24590161442756653, 0.2728766202926636, "cell 26"),
    "kl-1": Printed(614.3428955078125, 1.7899107933044434, 1.4833412170410156, 2.2002689838409424, "cell 26"),
    "kl-10": Printed(253.2718963623047, 0.8929857015609741, 2.517282724380493, 9.864953994750977, "cell 26"),
    "kl-100": Printed(218.6944122314453, 0.556671142578125, 2.1312551498413086, 57.030433654785156, "cell 26"),
}
"""Also printed, not used as the reference: the second 1e-11 run (entropy 10.18, KL 9.487), the
entropy 1e-7 run of the sweep (6.083, 11.08), a rerun control (cell 25: 10.31, 9.552) and a rerun
kl 100 (cell 32: 221.0, 0.5589, train 2.153, val 57.22): the spread between the study's own reruns."""

STUDY_TOLERANCE = 0.15
# ArticlesApril2018.csv after Bansal's cleaning: the notebook printed 1214 headlines.
STUDY_CORPUS = {"documents": 1214, "vocab_size": 3494, "pairs": 7803}


def agrees(study: float, ours: list[float], tolerance: float = STUDY_TOLERANCE) -> bool:
    """The study's value lies within our seed spread (min–max), or within ``tolerance`` of our mean."""
    mean = sum(ours) / len(ours)
    return min(ours) <= study <= max(ours) or abs(study - mean) <= tolerance * abs(mean)
