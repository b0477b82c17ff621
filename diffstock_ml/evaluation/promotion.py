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
