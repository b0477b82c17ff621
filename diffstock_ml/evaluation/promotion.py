"""The promotion rule and the plain-language verdicts of the evaluation report."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reasons: tuple[str, ...]  # why not (empty when promoted)
    crps_bp: float
    baseline_crps_bp: float
    dm_pvalue: float | None
    coverage_90: float


def promotion_decision(
    overall: pl.DataFrame,
    model: str,
    baseline: str,
    max_dm_pvalue: float = 0.05,
    coverage_tolerance: float = 0.03,
) -> Promotion:
    """Promote only if the model's CRPS beats `baseline` with DM p < `max_dm_pvalue` and its
    90 % coverage is within `coverage_tolerance` of 0.90."""
    rows = {row["model"]: row for row in overall.iter_rows(named=True)}
    if model not in rows or baseline not in rows:
        raise ValueError(f"the report has no row for {model!r} or {baseline!r}: {sorted(rows)}")
    mine, theirs = rows[model], rows[baseline]
    p_value = mine.get(f"dm_pvalue_vs_{baseline}")
    reasons = []
    if not mine["crps_bp"] < theirs["crps_bp"]:
        reasons.append(
            f"CRPS {mine['crps_bp']:.4f} bp does not beat {baseline}'s {theirs['crps_bp']:.4f} bp"
        )
    if p_value is None or not p_value < max_dm_pvalue:
        reasons.append(f"Diebold-Mariano p-value vs {baseline} is {p_value}, not < {max_dm_pvalue}")
    if abs(mine["coverage_90"] - 0.9) > coverage_tolerance:
        reasons.append(
            f"90 % coverage {mine['coverage_90']:.3f} is outside 0.90 ± {coverage_tolerance}"
        )
    return Promotion(
        promoted=not reasons,
        reasons=tuple(reasons),
        crps_bp=float(mine["crps_bp"]),
        baseline_crps_bp=float(theirs["crps_bp"]),
        dm_pvalue=None if p_value is None else float(p_value),
        coverage_90=float(mine["coverage_90"]),
    )


def verdicts(overall: pl.DataFrame, model: str, max_pvalue: float = 0.05) -> list[str]:
    """One sentence per other model: does `model` beat it in CRPS, significantly?"""
    rows = {row["model"]: row for row in overall.iter_rows(named=True)}
    mine = rows[model]
    lines = []
    for name, row in rows.items():
        if name == model:
            continue
        p_value = mine.get(f"dm_pvalue_vs_{name}")
        better = mine["crps_bp"] < row["crps_bp"]
        significant = p_value is not None and p_value < max_pvalue
        verdict = (
            "beats"
            if better and significant
            else "is not distinguishable from"
            if not significant
            else "loses to"
        )
        p_text = "n/a" if p_value is None else f"{p_value:.3g}"
        lines.append(
            f"- {model} **{verdict}** {name}: CRPS {mine['crps_bp']:.4f} vs {row['crps_bp']:.4f} "
            f"bp (skill {1 - mine['crps_bp'] / row['crps_bp']:+.1%}, DM p = {p_text})"
        )
    return lines


@dataclass(frozen=True)
class Standing:
    """What the registry records of a model version that passed the gate."""

    version: str
    as_of: str  # YYYYMMDD: the last session the model may have seen
    test_days: tuple[str, ...]
    crps_bp: float  # on `test_days`


@dataclass(frozen=True)
class ChampionMove:
    moves: bool
    reason: str


def champion_move(candidate: Standing, champion: Standing | None) -> ChampionMove:
    """`champion` only moves forward: to a newer as-of day, or to a model that beat the current
    champion on the same test days. Re-running an old as-of day never demotes it."""
    if champion is None:
        return ChampionMove(True, "there is no champion yet")
    if candidate.version == champion.version:
        return ChampionMove(False, f"version {candidate.version} already is the champion")
    if candidate.as_of > champion.as_of:
        return ChampionMove(
            True, f"as of {candidate.as_of}, newer than the champion's {champion.as_of}"
        )
    if candidate.test_days != champion.test_days:
        return ChampionMove(
            False,
            f"the champion (version {champion.version}) is as of {champion.as_of}, newer than "
            f"{candidate.as_of}: re-running history never demotes it",
        )
    if candidate.crps_bp < champion.crps_bp:
        return ChampionMove(
            True,
            f"CRPS {candidate.crps_bp:.4f} bp beats the champion's {champion.crps_bp:.4f} bp "
            f"on the same test days",
        )
    return ChampionMove(
        False,
        f"CRPS {candidate.crps_bp:.4f} bp does not beat the champion's (version "
        f"{champion.version}) {champion.crps_bp:.4f} bp on the same test days",
    )
