"""The one ``metrics.jsonl`` line reader: what it keeps, what it skips, and that writing and reading agree."""

from __future__ import annotations

import math

import pytest

from engine.runs.metrics_lines import MAX_STEP, format_line, parse_line, parse_lines, read_lines
from engine.runs.protocol import MAX_METRICS_LINE_BYTES


def test_a_written_line_reads_back_with_its_non_finite_values_as_floats():
    line = {"kind": "epoch", "step": 40, "epoch": 2, "val_loss": math.inf, "kl": -math.inf, "entropy": math.nan, "accuracy": 0.25}
    text = format_line(line)
    assert text.endswith("\n") and '"val_loss": "inf"' in text and '"entropy": "nan"' in text
    back = parse_line(text.rstrip("\n").encode())
    assert back is not None
    assert back["kind"] == "epoch" and back["step"] == 40 and isinstance(back["step"], int)
    assert back["epoch"] == 2.0 and isinstance(back["epoch"], float) and back["accuracy"] == 0.25
    assert back["val_loss"] == math.inf and back["kl"] == -math.inf and math.isnan(back["entropy"])


def test_values_that_are_not_numbers_are_left_out():
    back = parse_line(b'{"kind": "step", "step": 3, "epoch": 0.5, "train_loss": "high", "ok": true, "list": [1], "rate": 12}')
    assert back == {"kind": "step", "step": 3, "epoch": 0.5, "rate": 12.0}


SKIPPED = {
    "cut short": b'{"kind": "step", "st',
    "not an object": b"[1, 2]",
    "not UTF-8": b"\xff\xfe{}",
    "no kind": b'{"step": 1, "epoch": 0.5}',
    "another kind": b'{"kind": "debug", "step": 1, "epoch": 0.5}',
    "a text step": b'{"kind": "step", "step": "seven", "epoch": 1}',
    "a negative step": b'{"kind": "epoch", "step": -3, "epoch": 1}',
    "a step past the largest": b'{"kind": "step", "step": %d, "epoch": 1}' % (MAX_STEP + 1),
    "a boolean step": b'{"kind": "step", "step": true, "epoch": 1}',
    "no epoch": b'{"kind": "step", "step": 1}',
    "an infinite epoch": b'{"kind": "step", "step": 1, "epoch": "inf"}',
    "a 5000-digit integer": b'{"kind": "step", "step": 1, "epoch": 0.5, "loss": ' + b"9" * 5000 + b"}",
    "an integer beyond a float": b'{"kind": "step", "step": 1, "epoch": 0.5, "loss": 1' + b"0" * 400 + b"}",
    "nested too deep": b'{"kind": "step", "step": 1, "epoch": 0.5, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "over the length limit": b'{"kind": "step", "step": 1, "epoch": 0.5, "p": "' + b"x" * MAX_METRICS_LINE_BYTES + b'"}',
}


@pytest.mark.parametrize("text", SKIPPED.values(), ids=SKIPPED.keys())
def test_a_line_that_is_not_a_metrics_line_is_skipped(text):
    assert parse_line(text) is None


def test_a_file_is_read_past_an_over_long_line_without_holding_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    good = [format_line({"kind": "step", "step": step, "epoch": step / 10, "train_loss": 1.0 / step}) for step in (1, 2)]
    huge = '{"kind": "step", "step": 9, "epoch": 0.9, "p": "' + "x" * (3 * MAX_METRICS_LINE_BYTES) + '"}\n'
    path.write_text(good[0] + huge + "\n" + good[1] + '{"kind": "step", "st')
    assert [line["step"] for line in read_lines(path, "metrics")] == [1, 2]
    assert [line["step"] for line in parse_lines(path.read_bytes())] == [1, 2]
