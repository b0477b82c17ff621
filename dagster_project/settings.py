"""Every environment variable diffstock reads, resolved in one place with local defaults.

- `DIFFSTOCK_DATA`: folder all defaults live in (`./data`)
- `DIFFSTOCK_RAW`: raw day folders (`$DIFFSTOCK_DATA/demo/raw`, the synthetic demo market)
- `DIFFSTOCK_LAKE`: lake root, a path or fsspec URL such as `s3://bucket/lake`
  (`$DIFFSTOCK_DATA/lake`)
- `MLFLOW_TRACKING_URI`: MLflow store (`sqlite:///$DIFFSTOCK_DATA/mlflow/mlflow.db`)
- `DIFFSTOCK_MLFLOW_ARTIFACTS`: MLflow artifact location (`$DIFFSTOCK_DATA/mlflow/artifacts`)
- `DAGSTER_HOME`: the Dagster instance (`$DIFFSTOCK_DATA/dagster_home`; the demo command sets
  it, `dagster dev` needs it exported)
- `DIFFSTOCK_DEVICE`: torch device, `auto` = cuda -> mps -> cpu
- `DIFFSTOCK_PROFILE`: `demo` (6/2/2-day splits, a small model for a CPU) or `full` (30/5/5,
  sized for one GPU); fixes how many sessions the model assets map back from the as-of day
- `DIFFSTOCK_SPLIT`: `train,val,test` days, e.g. `3,1,1`, overriding the profile's split (the
  model assets then map back `train + val + test` sessions)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from diffstock_ml.train.profiles import PROFILES, Profile, parse_split


@dataclass(frozen=True)
class Settings:
    data: Path
    raw: Path
    lake: str
    mlflow_tracking_uri: str
    mlflow_artifacts: Path
    dagster_home: Path
    device: str
    profile: str
    split: tuple[int, int, int] | None = None  # overrides the profile's (DIFFSTOCK_SPLIT)

    @property
    def raw_is_demo(self) -> bool:
        """True when the raw folder is the built-in synthetic demo market's."""
        return self.raw == default_demo_raw(self.data)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data = Path(env.get("DIFFSTOCK_DATA", "data")).absolute()
        return cls(
            data=data,
            raw=Path(env.get("DIFFSTOCK_RAW", default_demo_raw(data))).absolute(),
            lake=env.get("DIFFSTOCK_LAKE", str(data / "lake")),
            mlflow_tracking_uri=env.get(
                "MLFLOW_TRACKING_URI", f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"
            ),
            mlflow_artifacts=Path(
                env.get("DIFFSTOCK_MLFLOW_ARTIFACTS", data / "mlflow" / "artifacts")
            ).absolute(),
            dagster_home=Path(env.get("DAGSTER_HOME", data / "dagster_home")).absolute(),
            device=env.get("DIFFSTOCK_DEVICE", "auto"),
            profile=env.get("DIFFSTOCK_PROFILE", "demo"),
            split=_split(env.get("DIFFSTOCK_SPLIT")),
        )

    def resolved_profile(self) -> Profile:
        """The profile named by DIFFSTOCK_PROFILE, on DIFFSTOCK_SPLIT's split when set."""
        if self.profile not in PROFILES:
            raise ValueError(f"DIFFSTOCK_PROFILE={self.profile!r} is not one of {sorted(PROFILES)}")
        profile = PROFILES[self.profile]
        return profile.with_split(*self.split) if self.split else profile


def _split(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    try:
        return parse_split(text)
    except ValueError as error:
        raise ValueError(f"DIFFSTOCK_SPLIT: {error}") from None


def default_demo_raw(data: Path) -> Path:
    return data / "demo" / "raw"
