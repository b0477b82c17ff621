"""The promotion gate of the evaluation report, a blocking check named after what it catches."""

from __future__ import annotations

import dagster as dg

from diffstock_ml.evaluation.promotion import Promotion

ASSET = dg.AssetKey("evaluation_report")
PROMOTION_CHECK = "model_not_better_than_baseline"

PROMOTION_SPEC = dg.AssetCheckSpec(
    PROMOTION_CHECK,
    asset=ASSET,
    blocking=True,
    description="The model beats the EWMA baseline (DM p < 0.05) with 90 % coverage "
    "within ±3 pp; only then may its version become the MLflow alias `champion`, "
    "which moves only forward (a newer as-of day, or better on the same test days).",
)


def promotion_result(key: str, promotion: Promotion, champion: str) -> dg.AssetCheckResult:
    """The gate's verdict on the as-of `key` model; `champion` says what the alias did."""
    return dg.AssetCheckResult(
        check_name=PROMOTION_CHECK,
        passed=promotion.promoted,
        description=f"the as-of {key} model: " + ("; ".join(promotion.reasons) or champion),
        metadata={
            "reasons": "; ".join(promotion.reasons) or "promoted",
            "champion": champion,
            "crps_bp": promotion.crps_bp,
            "baseline_crps_bp": promotion.baseline_crps_bp,
            "dm_pvalue": promotion.dm_pvalue if promotion.dm_pvalue is not None else -1.0,
            "coverage_90": promotion.coverage_90,
        },
    )
