"""metrics.jsonl on resume: one consistent history, even after a record was cut short."""

import json
import logging

from conftest import read_metrics

from avrl_jax.metrics_writer import MetricWriter, drop_records_after


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_resume_drops_records_past_the_restored_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_lines(path, [json.dumps({"step": s, "loss": 1.0 / s}) for s in (2, 4, 6)])
    drop_records_after(str(path), 4)
    assert [record["step"] for record in read_metrics(tmp_path)] == [2, 4]


def test_a_record_cut_short_is_dropped_with_a_warning_not_a_crash(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    whole = [json.dumps({"step": s, "loss": 0.5}) for s in (2, 4)]
    write_lines(path, [*whole, '{"step": 6, "lo'])  # the machine went down mid-write
    with caplog.at_level(logging.WARNING):
        writer = MetricWriter(str(tmp_path), resume_step=4)
    writer.write_scalars(6, {"loss": 0.25})
    writer.close()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [2, 4, 6] and records[-1]["loss"] == 0.25
    assert "dropping lines [3]" in caplog.text and str(path) in caplog.text
    assert not (tmp_path / "metrics.jsonl.tmp").exists()
