"""The paper-layout table and the attention accuracy reach table-taking loggers (W&B)."""

from __future__ import annotations

from typing import Any

from raiha.evaluation.results_io import log_results_tables


class _TableLogger:
    def __init__(self) -> None:
        self.tables: list[dict[str, Any]] = []
        self.metrics: dict[str, float] = {}

    def log_table(self, key: str, columns: list[str], data: list[list[str]]) -> None:
        self.tables.append({"key": key, "columns": columns, "data": data})

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.metrics.update(metrics)


def _scores(mse: float) -> dict[str, float]:
    return {"n": 4, "mse": mse, "psnr": 30.0, "fmse": 10 * mse}


def test_table_and_attention_reach_table_loggers_only() -> None:
    record = {
        "subsets": {"easy": _scores(1.0), "hard": _scores(2.0)},
        "all": _scores(1.5),
        "composite_baseline": {"subsets": {"easy": _scores(5.0), "hard": _scores(6.0)}, "all": _scores(5.5)},
        "attention": {"attention_on_match": 0.4, "match_area_share": 0.1, "ratio": 4.0, "n": 8, "seeds": 2},
    }
    table_logger, plain_logger = _TableLogger(), object()
    assert log_results_tables([plain_logger, table_logger], record, subset_order=["easy", "hard"]) == 1
    (table,) = table_logger.tables
    assert table["key"] == "test/results_table"
    assert table["columns"][0] == "Method" and table["columns"][1].startswith("easy")
    assert [row[0] for row in table["data"]] == ["Composite", "Model"]
    assert table["data"][1][1] == "1.00"  # model easy MSE
    assert table_logger.metrics["test/attention/ratio"] == 4.0


def test_per_image_rows_reach_table_loggers_and_buckets_are_recorded() -> None:
    from raiha.evaluation.per_image_rows import CSV_COLUMNS
    from raiha.evaluation.results_io import record_from_rows

    rows = [
        {"name": f"easy/composite_images/e{i}_1_1.jpg", "subset": "easy", "fg_ratio": ratio, "mse": float(i),
         "psnr": 30.0, "fmse": 10.0 * i, "composite_mse": 5.0, "composite_psnr": 20.0, "composite_fmse": 50.0}
        for i, ratio in enumerate((0.01, 0.1, 0.5))
    ]  # fmt: skip
    record = record_from_rows(rows, protocol="is2am", dataset="synthetic", subset_names=["easy"])
    assert record["all"]["mse"] == 1.0 and record["composite_baseline"]["all"]["mse"] == 5.0
    assert record["protocol_conventions"]["psnr_peak"] == "target_max"
    assert {label: b["all"]["n"] for label, b in record["fg_ratio_buckets"]["buckets"].items()} == {
        "0-5%": 1, "5-15%": 1, "15-100%": 1,
    }  # fmt: skip
    table_logger = _TableLogger()
    log_results_tables([table_logger], record, subset_order=["easy"])
    per_image = next(table for table in table_logger.tables if table["key"] == "test/per_image")
    assert per_image["columns"] == list(CSV_COLUMNS) and len(per_image["data"]) == 3
    assert per_image["data"][2][CSV_COLUMNS.index("mse")] == 2.0
