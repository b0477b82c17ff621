"""The model registry's aliases: every new version is the `challenger`; `champion` only moves
forward (`diffstock_ml.evaluation.promotion.champion_move` is the rule).

Each version carries the tags the rule needs: `as_of` and `test_days` from training, and
`test_crps_bp` once its evaluation report passed the gate.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.entities.model_registry import ModelVersion

from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_ml.evaluation.promotion import ChampionMove, Standing, champion_move

CHAMPION = "champion"
CHALLENGER = "challenger"
AS_OF_TAG = "as_of"
TEST_DAYS_TAG = "test_days"
CRPS_TAG = "test_crps_bp"


def register_challenger(
    mlflow: MLflowResource, name: str, version: str, as_of: str, test_days: Sequence[str]
) -> None:
    """Tag a newly registered version with its as-of and test days; it becomes `challenger`."""
    mlflow.set_version_tags(name, version, {AS_OF_TAG: as_of, TEST_DAYS_TAG: ",".join(test_days)})
    mlflow.set_alias(name, CHALLENGER, version)


def crown(mlflow: MLflowResource, name: str, version: str, crps_bp: float) -> ChampionMove:
    """A version that passed the gate: record its test CRPS, then move `champion` if the rule
    allows it."""
    mlflow.set_version_tags(name, version, {CRPS_TAG: repr(float(crps_bp))})
    candidate = standing(mlflow.model_version(name, version))
    if candidate is None:
        raise ValueError(
            f"{name} version {version} has no {AS_OF_TAG}/{TEST_DAYS_TAG} tags: it was not "
            f"registered by the diffusion_model asset"
        )
    current = mlflow.version_by_alias(name, CHAMPION)
    move = champion_move(candidate, standing(current) if current is not None else None)
    if move.moves:
        mlflow.set_alias(name, CHAMPION, version)
    return move


def standing(version: ModelVersion) -> Standing | None:
    """The rule's view of a version; None for one without the tags (an older diffstock's)."""
    tags = version.tags or {}
    if not {AS_OF_TAG, TEST_DAYS_TAG, CRPS_TAG} <= set(tags):
        return None
    return Standing(
        version=str(version.version),
        as_of=tags[AS_OF_TAG],
        test_days=tuple(tags[TEST_DAYS_TAG].split(",")),
        crps_bp=float(tags[CRPS_TAG]),
    )
