"""The promotion gate and the champion rule: every branch."""

import polars as pl
import pytest

from diffstock_ml.evaluation.promotion import Standing, champion_move, promotion_decision


def _overall(crps: float = 4.6, p_value: float | None = 0.01, coverage: float = 0.9):
    return pl.DataFrame(
        {
            "model": ["diffusion", "ewma_gaussian"],
            "crps_bp": [crps, 4.9],
            "coverage_90": [coverage, 0.9],
            "dm_pvalue_vs_ewma_gaussian": [p_value, None],
        },
        schema_overrides={"dm_pvalue_vs_ewma_gaussian": pl.Float64},
    )


def _decide(**kwargs):
    return promotion_decision(_overall(**kwargs), "diffusion", "ewma_gaussian")


def test_a_model_that_beats_the_baseline_significantly_and_is_calibrated_is_promoted() -> None:
    decision = _decide()
    assert decision.promoted and decision.reasons == ()
    assert (decision.crps_bp, decision.baseline_crps_bp, decision.dm_pvalue) == (4.6, 4.9, 0.01)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"crps": 4.9}, "CRPS 4.9000 bp does not beat ewma_gaussian's 4.9000 bp"),
        ({"crps": 5.1, "p_value": 0.001}, "CRPS 5.1000 bp does not beat"),
        ({"p_value": 0.05}, "Diebold-Mariano p-value vs ewma_gaussian is 0.05, not < 0.05"),
        ({"p_value": None}, "Diebold-Mariano p-value vs ewma_gaussian is None"),
        ({"coverage": 0.869}, "90 % coverage 0.869 is outside 0.90 ± 0.03"),
        ({"coverage": 0.931}, "90 % coverage 0.931 is outside 0.90 ± 0.03"),
    ],
)
def test_each_failed_condition_refuses_with_its_reason(kwargs: dict, reason: str) -> None:
    decision = _decide(**kwargs)
    assert not decision.promoted
    assert len(decision.reasons) == 1 and decision.reasons[0].startswith(reason)


def test_every_failed_condition_is_listed() -> None:
    assert len(_decide(crps=5.0, p_value=0.5, coverage=0.5).reasons) == 3


def test_coverage_at_the_tolerance_still_passes() -> None:
    assert _decide(coverage=0.875).promoted and _decide(coverage=0.925).promoted


def test_a_missing_row_is_an_error_naming_the_models() -> None:
    with pytest.raises(ValueError, match="no row for 'diffusion' or 'garch_t'"):
        promotion_decision(_overall(), "diffusion", "garch_t")


TEST_DAYS = ("20251112", "20251113")
CHAMPION = Standing("3", "20251113", TEST_DAYS, crps_bp=4.60)


def _candidate(as_of: str, crps: float, test_days=TEST_DAYS, version: str = "7") -> Standing:
    return Standing(version, as_of, test_days, crps_bp=crps)


def test_the_first_model_past_the_gate_becomes_champion() -> None:
    assert champion_move(_candidate("20251113", 4.7), None).moves


def test_a_newer_as_of_day_takes_over_even_if_its_test_crps_is_higher() -> None:
    move = champion_move(_candidate("20251114", 4.9, ("20251113", "20251114")), CHAMPION)
    assert move.moves and "newer than the champion's 20251113" in move.reason


def test_re_running_an_older_as_of_day_never_demotes() -> None:
    move = champion_move(_candidate("20251112", 4.1, ("20251111", "20251112")), CHAMPION)
    assert not move.moves and "re-running history never demotes" in move.reason


def test_same_test_days_move_only_to_a_better_model() -> None:
    assert champion_move(_candidate("20251113", 4.59), CHAMPION).moves
    worse = champion_move(_candidate("20251113", 4.61), CHAMPION)
    assert not worse.moves and "does not beat the champion's (version 3) 4.6000 bp" in worse.reason
    assert not champion_move(_candidate("20251113", 4.60), CHAMPION).moves  # a tie keeps it


def test_the_champion_itself_does_not_move() -> None:
    assert not champion_move(_candidate("20251113", 4.5, version="3"), CHAMPION).moves
