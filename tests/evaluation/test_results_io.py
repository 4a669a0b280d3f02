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
