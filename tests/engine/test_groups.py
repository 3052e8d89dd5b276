"""Seed groups, their statistics and ``lm-explorer compare``: intervals checked against scipy, groups against hand-made runs."""

from __future__ import annotations

import json
import math
import random

import pytest
from scipy import stats

from engine.cli.main import main
from engine.config.grid import MAX_GRID_RUNS, Axis, grid_points, parse_seeds, parse_vary
from engine.config.presets import build_run_config
from engine.errors import UserError
from engine.runs.compare import compare_seed_groups
from engine.runs.groups import GroupEpochs, aggregate, group_key, seed_groups
from engine.runs.names import grid_names
from engine.runs.view import RunReader
from engine.runs.welch import t_quantile, welch_difference
from tests.conftest import hand_made_metrics, write_hand_made_run

# -- the statistics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("q", "df", "known"), [(0.975, 1, 12.706204736174707), (0.975, 10, 2.228138851986274), (0.5, 3, 0.0)])
def test_t_quantile_known_values(q, df, known):
    assert t_quantile(q, df) == pytest.approx(known, abs=1e-12)


@pytest.mark.parametrize("df", [1, 1.5, 2.3, 4, 17.2, 300, 1e5])
def test_t_quantile_matches_scipy(df):
    for q in (0.6, 0.9, 0.975, 0.995, 0.9999):
        assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-10)


def test_welch_interval_matches_scipy_ttest_ind_unequal_variances():
    draw = random.Random(19)
    for _ in range(300):
        a = [draw.gauss(0, draw.uniform(0.01, 5)) for _ in range(draw.randint(2, 8))]
        b = [draw.gauss(1, draw.uniform(0.01, 5)) for _ in range(draw.randint(2, 8))]
        ours, reference = welch_difference(a, b), stats.ttest_ind(a, b, equal_var=False)
        interval = reference.confidence_interval(0.95)
        assert (ours.low, ours.high) == pytest.approx((interval.low, interval.high), rel=1e-9, abs=1e-12)
        assert ours.df == pytest.approx(reference.df, rel=1e-12)
        assert ours.distinguishable == (reference.pvalue < 0.05)


def test_welch_hand_worked_values():
    # a: mean 2, s² = 1; b: mean 5, s² = 1; se = √(1/3 + 1/3); df = (2/3)² / (2 · (1/3)² / 2) = 4
    d = welch_difference([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert (d.difference, d.df, d.n_a, d.n_b) == (-3.0, pytest.approx(4.0), 3, 3)
    half = 2.7764451051977987 * math.sqrt(2 / 3)
    assert (d.low, d.high) == pytest.approx((-3 - half, -3 + half))


def test_one_seed_a_side_cannot_be_compared():
    d = welch_difference([1.0], [2.0, 3.0])
    assert not d.comparable and not d.distinguishable and math.isnan(d.low)


# -- groups ------------------------------------------------------------------------------------------


def _seed_metrics(epochs: int, seed: int, start: float) -> list[dict]:
    """Hand-made metrics whose level moves with the seed (by 0.1 per seed), so a group has spread."""
    return hand_made_metrics(epochs, start=start + 0.1 * seed)


@pytest.fixture
def grouped(tmp_path):
    """Two 3-seed groups (kl 1 a clear 1.0 below kl 10) and a lone run of another size; epochs 3 (one seed: 2)."""
    for seed in range(3):
        write_hand_made_run(
            tmp_path,
            f"g-w1-s{seed}",
            metrics=_seed_metrics(3, seed, 6.0),
            objective__regularizer="kl",
            objective__weight=1.0,
            train__seed=seed,
        )
        write_hand_made_run(
            tmp_path,
            f"g-w10-s{seed}",
            epochs=3 - (seed == 2),
            metrics=_seed_metrics(3 - (seed == 2), seed, 7.0),
            objective__regularizer="kl",
            objective__weight=10.0,
            train__seed=seed,
        )
    write_hand_made_run(tmp_path, "wide", model__hidden_size=32)
    return tmp_path


def test_runs_that_differ_only_in_seed_are_one_group(grouped):
    groups = {group.label: group for group in seed_groups(RunReader(grouped).views())}
    assert sorted(groups) == ["g-w1", "g-w10", "wide"]
    assert groups["g-w1"].names == ["g-w1-s0", "g-w1-s1", "g-w1-s2"] and groups["g-w1"].seeds == [0, 1, 2]
    assert groups["wide"].n == 1


def test_epochs_and_device_do_not_split_a_group():
    one = build_run_config("a", None, {"train.seed": 1, "train.epochs": 3, "train.device": "cpu"})
    two = build_run_config("b", None, {"train.seed": 2, "train.epochs": 5, "train.device": "cuda"})
    assert group_key(one) == group_key(two) != group_key(build_run_config("c", None, {"train.lr": 0.01}))


def test_aggregate_aligns_epochs_and_interpolates_steps():
    epochs = aggregate([([1, 2, 3], [1.0, 2.0, 3.0]), ([1, 2], [3.0, 4.0])], band="minmax")
    assert (epochs.x, epochs.mean, epochs.low, epochs.high, epochs.interpolated) == (
        [1, 2],
        [2.0, 3.0],
        [1.0, 2.0],
        [3.0, 4.0],
        False,
    )
    steps = aggregate([([0, 10], [0.0, 10.0]), ([0, 4, 8], [2.0, 2.0, 2.0])], band="sd", align=False)
    assert steps.x == [0, 4, 8] and steps.interpolated
    assert steps.mean == pytest.approx([1.0, 3.0, 5.0])
    assert steps.high[1] - steps.mean[1] == pytest.approx(math.sqrt(2))  # values 4 and 2: sd √2


def test_compare_at_the_last_common_epoch_against_scipy(grouped):
    views = RunReader(grouped).views()
    groups = {group.label: group for group in seed_groups(views)}
    comparison = compare_seed_groups(grouped, groups["g-w1"], groups["g-w10"])
    assert comparison.epoch == 2  # one kl-10 seed finished only two
    entropy = next(row for row in comparison.rows if row.metric == "entropy")
    a = [6.0 + 0.1 * seed - 0.5 * 2 - 0.25 for seed in range(3)]
    b = [7.0 + 0.1 * seed - 0.5 * 2 - 0.25 for seed in range(3)]
    reference = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert (entropy.difference.low, entropy.difference.high) == pytest.approx((reference.low, reference.high))
    assert entropy.sentence("g-w1", "g-w10").startswith("entropy at epoch 2: g-w1 is lower than g-w10 by 1 (95 % CI ")
    assert "val_loss" not in [row.metric for row in comparison.rows]  # their objectives differ


def test_epoch_lines_read_back_as_floats_still_align():
    from engine.runs.groups import GroupEpochs

    epochs = GroupEpochs(["a", "b"], [[{"epoch": 1.0, "kl": 1.0}, {"epoch": 2.0, "kl": 2.0}], [{"epoch": 1, "kl": 3.0}]])
    assert epochs.common_epochs == [1] and epochs.at("kl", 1) == [1.0, 3.0]


def test_compare_command_prints_the_interval_and_the_sentence(grouped, capsys):
    assert main(["compare", "g-w1-s0", "g-w10", "--checkpoints", str(grouped)]) == 0
    out = capsys.readouterr().out
    assert "A: g-w1 (n = 3: g-w1-s0, g-w1-s1, g-w1-s2)" in out
    assert "n = 3 + 3)." in out and "95 % CI" in out and "Welch df 4.0" in out
    assert main(["compare", "g-w1", "wide", "--checkpoints", str(grouped), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["metrics"]
    assert all(not row["sentence"].count("distinguishable") and "run more seeds" in row["sentence"] for row in rows)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("g-w1", "nope", "No seed group or run named 'nope'"),
        ("g-w1-s0", "g-w1-s2", "are the same seed group (g-w1)"),
    ],
)
def test_compare_refuses_in_one_sentence(grouped, capsys, a, b, message):
    assert main(["compare", a, b, "--checkpoints", str(grouped)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# -- grids and their names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("0-2, 7", [0, 1, 2, 7]), ("3", [3])]
)
def test_seed_lists_and_ranges(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("4-1", "runs backwards"),
        ("1,1", "names a seed twice"),
        ("a", "'a' is not a whole number from 0 to "),
        ("0-9999", "more than"),
    ],
)
def test_bad_seed_lists(text, message):
    with pytest.raises(UserError, match=message):
        parse_seeds(text)


def test_vary_any_setting_by_key_or_flag():
    assert parse_vary("objective.regularizer=kl,entropy") == Axis("objective.regularizer", ("kl", "entropy"))
    assert parse_vary("lr=1e-3, 3e-3") == Axis("train.lr", (1e-3, 3e-3))
    for text, message in [
        ("nothing=1", "is not SETTING=V1"),
        ("train.lr=-1", "--lr must be"),
        ("corpus.paths=a,b", "a list setting"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_vary(text)


def test_the_grid_is_the_product_and_bounded():
    points = grid_points([Axis("objective.weight", (1.0, 10.0, 100.0)), Axis("train.seed", (0, 1, 2))])
    assert len(points) == 9 and points[1] == {"objective.weight": 1.0, "train.seed": 1}
    with pytest.raises(UserError, match=f"The grid holds 300 runs .*more than the {MAX_GRID_RUNS}"):
        grid_points([Axis("train.seed", tuple(range(100))), Axis("objective.weight", (1.0, 2.0, 3.0))])


def test_grid_names_say_what_varies_seed_last():
    configs = [
        build_run_config("x", None, {"objective.regularizer": r, "objective.weight": 10.0, "train.lr": lr, "train.seed": s})
        for r, lr, s in [("kl", 1e-3, 0), ("entropy", 3e-3, 1)]
    ]
    assert grid_names("g", configs, ["objective.regularizer", "train.seed", "train.lr"]) == [
        "g-kl-lr0.001-s0",
        "g-entropy-lr0.003-s1",
    ]
    assert grid_names("g", configs[:1], ["train.seed"]) == ["g"]
    unnamed = grid_names(None, configs, ["train.seed"])
    assert unnamed[0].startswith("ce-kl-w10-") and unnamed[0].endswith("-s0")


def test_a_rerun_of_the_same_seed_stands_alone(tmp_path):
    for name in ("a", "b"):
        write_hand_made_run(tmp_path, name)
    write_hand_made_run(tmp_path, "c", train__seed=1)
    groups = sorted((group.names for group in seed_groups(RunReader(tmp_path).views())), key=len)
    assert [len(names) for names in groups] == [1, 2] and "c" in groups[1] and groups[0][0] in ("a", "b")


def test_runs_on_different_corpora_are_not_one_group(tiny_corpus, small_corpus):
    """The same settings on two corpora are two experiments, not the seed spread of one."""
    on_tiny = build_run_config("a-s0", None, {"corpus.paths": [str(tiny_corpus)], "train.seed": 0})
    on_small = build_run_config("a-s1", None, {"corpus.paths": [str(small_corpus)], "train.seed": 1})
    assert group_key(on_tiny) != group_key(on_small)
    assert group_key(on_tiny) == group_key(on_tiny.model_copy(update={"train": on_tiny.train.model_copy(update={"seed": 5})}))


def test_no_spread_on_either_side_gives_the_point_interval_scipy_gives():
    d = welch_difference([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    interval = stats.ttest_ind([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], equal_var=False).confidence_interval()
    assert (d.low, d.high) == (interval.low, interval.high) == (-1.0, -1.0) and d.distinguishable


def test_a_diverged_member_is_left_out_of_its_groups_values():
    epochs = GroupEpochs(["a-s0", "a-s1", "a-s2"], [[{"epoch": 1, "val_loss": v}] for v in (1.0, math.nan, 2.0)])
    assert epochs.at("val_loss", 1) == [1.0, 2.0]


def test_a_grid_name_that_is_no_folder_name_is_refused_before_any_folder_is_made(tiny_corpus, tmp_path):
    from engine.jobs.controller import Controller

    config = build_run_config("ok", None, {"corpus.paths": [str(tiny_corpus)]}).model_copy(update={"name": "a b/../c"})
    with pytest.raises(UserError, match="is not a plain folder name"):
        Controller(tmp_path).queue([config])
    assert list(tmp_path.iterdir()) == []


def test_compare_json_is_strict_json_with_too_few_seeds(tmp_path, capsys):
    for name, seed in (("g-w1-s0", 0), ("g-w10-s0", 0)):
        weight = 1.0 if "w1-" in name else 10.0
        write_hand_made_run(tmp_path, name, objective__regularizer="kl", objective__weight=weight, train__seed=seed)
    assert main(["compare", "g-w1-s0", "g-w10-s0", "--checkpoints", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and "Infinity" not in out
    parsed = json.loads(out)
    assert parsed["epoch"] is not None and all(row["low"] is None for row in parsed["metrics"]) and parsed["sentences"]


def test_groups_with_different_heads_leave_out_entropy_and_kl():
    """Entropy and KL are the study's clipped definitions on a linear head and softmax ones otherwise: not comparable."""
    from engine.runs.compare import compare_groups

    lines = [
        [{"epoch": 1, "val_loss": 1.0 + s, "entropy": 2.0, "kl": 3.0, "accuracy": 0.1, "perplexity": 9.0 + s}] for s in (0, 1)
    ]
    epochs = GroupEpochs(["a-s0", "a-s1"], lines)
    comparison = compare_groups("a", epochs, "b", epochs, objectives_differ=False, heads_differ=True)
    assert [row.metric for row in comparison.rows] == ["val_loss", "accuracy", "perplexity"]
    assert any("entropy and kl are left out" in sentence for sentence in comparison.sentences())


def test_groups_that_would_read_the_same_get_distinct_labels_and_keep_their_identity(tmp_path, capsys):
    """``kl-s0``, ``kl-s1`` and ``kl-s2``, ``kl-s3`` (another model size) and a lone ``kl`` would all read ``kl``."""
    from engine.runs.groups import find_group

    for seed in (0, 1):
        write_hand_made_run(tmp_path, f"kl-s{seed}", train__seed=seed)
        write_hand_made_run(tmp_path, f"kl-s{seed + 2}", train__seed=seed + 2, model__hidden_size=32)
    write_hand_made_run(tmp_path, "kl", model__hidden_size=64)
    views = RunReader(tmp_path).views()
    groups = seed_groups(views)
    assert sorted(group.label for group in groups) == ["kl", "kl (kl-s0 +1)", "kl (kl-s2 +1)"]
    assert len({group.key for group in groups}) == 3
    assert all(find_group(views, group.label, tmp_path).names == group.names for group in groups)
    # a group's identity stays as its members come and go, and as other groups appear
    (alone,) = [group for group in seed_groups([view for view in views if view.name != "kl-s1"]) if "kl-s0" in group.names]
    (whole,) = [group for group in groups if "kl-s0" in group.names]
    assert alone.key == whole.key and alone.label == "kl-s0"
    assert main(["compare", "kl (kl-s2 +1)", "kl (kl-s0 +1)", "--checkpoints", str(tmp_path)]) == 0
    assert "A: kl (kl-s2 +1) (n = 2: kl-s2, kl-s3)" in capsys.readouterr().out
