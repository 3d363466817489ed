"""The report's choice of transport follows its own measurements."""

from __future__ import annotations

from benchmarks.report_users import which_transport


def _rows(small: float, job: float, large: float) -> dict[str, tuple[float, float]]:
    return {
        "1 KiB JSON put": (small, 0.4),
        "1 KiB JSON get, cold cache": (small * 0.9, 0.3),
        "64 MiB put": (large, 1.0),
        "job: start to first put": (job, 0.5),
    }


def test_obstore_is_recommended_only_when_it_was_faster_everywhere_small() -> None:
    text = which_transport({"moto": _rows(0.7, 0.5, 1.1), "seaweedfs": _rows(0.5, 0.6, 0.9)})
    assert text.startswith("**Which to pick:** the obstore transport")
    assert "0.45x to 0.70x" in text and "0.50x to 0.60x" in text and "0.90x to 1.10x" in text
    assert "boto3 stays the default" in text


def test_no_recommendation_when_boto3_was_faster_somewhere() -> None:
    text = which_transport({"moto": _rows(1.2, 0.5, 1.0)})
    assert "neither transport was faster" in text and "keep the default" in text
    assert "obstore transport (`pip" not in text


def test_missing_measurements_are_said_so() -> None:
    assert "not measured" in which_transport({"moto": {"1 KiB JSON put": (0.5, 0.4)}})
