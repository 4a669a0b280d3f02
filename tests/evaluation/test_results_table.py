"""Results table: header, row order, number format, "All" last; improvement and seed aggregation."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from raiha.evaluation.results_table import (
    IHARMONY4_SUBSETS,
    PAPER_TABLE_ORDER,
    aggregate_runs,
    improvement_summary,
    print_results_table,
    results_markdown,
)


def scores(mse: float, psnr: float, fmse: float, n: int = 10) -> dict:
    return {"n": n, "mse": mse, "psnr": psnr, "fmse": fmse}


COMPOSITE = {
    "protocol": "paper",
    "subsets": {  # deliberately not in IHARMONY4_SUBSETS order
        "Hday2night": scores(109.654, 34.01, 900.0),
        "HCOCO": scores(69.371, 33.94, 996.59),
        "HAdobe5k": scores(345.54, 28.159, 2051.61),
        "HFlickr": scores(264.35, 28.32, 1574.37),
    },
    "all": scores(172.4712, 31.6, 1376.42, n=40),
}
MODEL = {
    "protocol": "paper",
    "subsets": {"HCOCO": scores(10.53, 41.82, 150.0), "HAdobe5k": scores(13.32, 41.55, 100.0)},
    "all": scores(15.6, 41.1, 120.0, n=20),
}


def test_markdown_header_rows_format_and_all_last() -> None:
    lines = results_markdown({"Composite": COMPOSITE, "Model": MODEL}).splitlines()
    assert len(lines) == 4
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[0] == "Method"
    assert header[1:4] == ["HCOCO MSE↓", "HCOCO PSNR↑", "HCOCO fMSE↓"]
    assert [cell.split()[0] for cell in header[1::3]] == [*IHARMONY4_SUBSETS, "All"]
    assert header[-3:] == ["All MSE↓", "All PSNR↑", "All fMSE↓"]
    assert lines[1].startswith("| --- | ---: |")
    composite_cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    model_cells = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert composite_cells[0] == "Composite" and model_cells[0] == "Model"
    assert composite_cells[1:4] == ["69.37", "33.94", "996.59"]
    assert composite_cells[-3:] == ["172.47", "31.60", "1376.42"]
    assert composite_cells[4:7] == ["345.54", "28.16", "2051.61"]  # HAdobe5k, rounded
    assert model_cells[7:13] == ["-"] * 6  # HFlickr and Hday2night missing for the model
    assert model_cells[-3:] == ["15.60", "41.10", "120.00"]


def test_markdown_respects_subset_order_and_metrics() -> None:
    text = results_markdown(
        {"Composite": COMPOSITE}, subset_order=PAPER_TABLE_ORDER, metrics=("mse", "psnr")
    )
    header = [cell.strip() for cell in text.splitlines()[0].strip("|").split("|")]
    assert header == [
        "Method",
        "HAdobe5k MSE↓", "HAdobe5k PSNR↑", "HFlickr MSE↓", "HFlickr PSNR↑",
        "HCOCO MSE↓", "HCOCO PSNR↑", "Hday2night MSE↓", "Hday2night PSNR↑",
        "All MSE↓", "All PSNR↑",
    ]  # fmt: skip
    only_one = results_markdown({"Composite": COMPOSITE}, subset_order=["HFlickr"], metrics=("n",))
    assert only_one.splitlines()[2] == "| Composite | 10 | 40 |"


def test_markdown_rejects_results_without_subsets() -> None:
    with pytest.raises(ValueError, match="'subsets'"):
        results_markdown({"Broken": {"mse": 1.0}})


def test_print_results_table_renders_title_and_numbers() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, force_terminal=False)
    print_results_table(
        {"Composite": COMPOSITE, "Model": MODEL}, title="iHarmony4 test", console=console
    )
    text = buffer.getvalue()
    assert "iHarmony4 test" in text
    assert "172.47" in text and "41.10" in text and "All PSNR↑" in text
    assert text.index("Composite") < text.index("Model")


def test_improvement_summary_known_answer() -> None:
    baseline = {
        "subsets": {"A": scores(200.0, 30.0, 1000.0), "B": scores(10.0, 40.0, 100.0)},
        "all": scores(100.0, 35.0, 500.0),
    }
    model = {
        "subsets": {
            "A": scores(50.0, 40.0, 250.0),
            "B": scores(12.0, 39.5, 90.0),
            "C": scores(1.0, 1.0, 1.0),
        },
        "all": scores(80.0, 36.0, 400.0),
    }
    summary = improvement_summary(baseline, model)
    assert list(summary) == ["A", "B", "All"]  # C has no baseline
    assert summary["A"] == pytest.approx(
        {
            "mse_rel_change": -0.75,
            "fmse_rel_change": -0.75,
            "psnr_delta": 10.0,
            "beats_baseline": True,
        }
    )
    assert summary["B"]["mse_rel_change"] == pytest.approx(0.2)
    assert summary["B"]["psnr_delta"] == pytest.approx(-0.5)
    assert summary["B"]["beats_baseline"] is False
    assert summary["All"]["mse_rel_change"] == pytest.approx(-0.2)
    assert summary["All"]["beats_baseline"] is True


def test_aggregate_runs_mean_std_and_table_shows_both() -> None:
    run_a = {
        "protocol": "paper",
        "subsets": {"HCOCO": scores(1.0, 40.0, 10.0)},
        "all": scores(1.0, 40.0, 10.0),
    }
    run_b = {
        "protocol": "paper",
        "subsets": {"HCOCO": scores(3.0, 42.0, 14.0)},
        "all": scores(3.0, 42.0, 14.0),
    }
    aggregated = aggregate_runs([run_a, run_b])
    assert aggregated["protocol"] == "paper"
    assert aggregated["subsets"]["HCOCO"] == pytest.approx(
        {
            "n": 10,
            "runs": 2,
            "mse": 2.0,
            "mse_std": 1.0,
            "psnr": 41.0,
            "psnr_std": 1.0,
            "fmse": 12.0,
            "fmse_std": 2.0,
        }
    )
    assert aggregate_runs([run_a, run_b], ddof=1)["all"]["mse_std"] == pytest.approx(2**0.5)
    row = results_markdown({"Raiha": aggregated}).splitlines()[2]
    assert (
        row
        == "| Raiha | 2.00 ± 1.00 | 41.00 ± 1.00 | 12.00 ± 2.00 | 2.00 ± 1.00 | 41.00 ± 1.00 | 12.00 ± 2.00 |"
    )
    with pytest.raises(ValueError, match="at least one run"):
        aggregate_runs([])
