"""Named profiles: split sizes, model and training settings that belong together.

`demo` trains in minutes on a 2-core CPU on the demo market, `full` is sized for one GPU and the
seed plan's 54 symbols x 40 days, `tiny` is for tests. `demo_paths` is `demo` with the path
target: the model diffuses the whole 1..30 s path (`ModelConfig.path_horizons = HORIZONS`), and
`tiny_paths` is `tiny` with it (tests of the `path_report` asset).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from diffstock_ml.market import HORIZON_S
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.train.config import TrainConfig


@dataclass(frozen=True)
class Profile:
    name: str
    train_days: int
    val_days: int
    test_days: int
    model: ModelConfig
    train: TrainConfig

    @property
    def days(self) -> int:
        """Trading days one model needs: the as-of day and the ones before it."""
        return self.train_days + self.val_days + self.test_days

    @property
    def split(self) -> tuple[int, int, int]:
        return self.train_days, self.val_days, self.test_days

    def with_split(self, train: int, val: int, test: int) -> Profile:
        """The same model and training on another day split (each part at least one day)."""
        if min(train, val, test) < 1:
            raise ValueError(
                f"a split needs at least one day per part, got {train},{val},{test} "
                "(train,val,test)"
            )
        return dataclasses.replace(self, train_days=train, val_days=val, test_days=test)


def parse_split(text: str) -> tuple[int, int, int]:
    """`"3,1,1"` -> (3, 1, 1); a ValueError that shows the expected form otherwise."""
    try:
        train, val, test = (int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"a split is three whole numbers of days train,val,test such as 3,1,1, got {text!r}"
        ) from None
    if min(train, val, test) < 1:
        raise ValueError(f"a split needs at least one day per part, got {text!r}")
    return train, val, test


_SETTINGS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    # tests: seconds on a CPU
    "tiny": (
        ModelConfig(
            d_model=32,
            n_heads=2,
            n_layers=1,
            patch_size=10,
            denoiser_hidden=64,
            denoiser_depth=2,
            time_embed_dim=32,
            head_family="student_t",  # the demo's residual, so that tests exercise it
            residual_transform="gaussianise",
        ),
        TrainConfig(
            batch_size=128,
            k_noise=2,
            max_steps=40,
            warmup_steps=5,
            eval_every=20,
            checkpoint_every=10,
            log_every=10,
            val_windows=128,
            val_samples=32,
            val_steps=5,
        ),
    ),
    # the demo market (12 symbols x 6 training days) on a 2-core laptop: a few minutes.
    # docs/experiments.md ("The denoiser learnt nothing"): a Student-t head with the diffusion of
    # its Gaussianised residual, no dropout (training sees a sixth of an epoch; 22 % faster, the
    # same CRPS for every learned model), validation on 4,000 windows (500 picked noise).
    "demo": (
        ModelConfig(
            d_model=64,
            n_heads=4,
            n_layers=2,
            patch_size=10,
            denoiser_hidden=128,
            denoiser_depth=3,
            time_embed_dim=64,
            dropout=0.0,
            cfg_dropout=0.0,
            head_family="student_t",
            residual_transform="gaussianise",
        ),
        TrainConfig(
            batch_size=256,
            k_noise=4,
            max_steps=1_000,
            warmup_steps=50,
            eval_every=200,
            checkpoint_every=200,
            log_every=50,
            val_windows=4_000,
            val_samples=16,
            val_steps=5,
        ),
    ),
    # 54 symbols x 30 training days (~37M windows) on one GPU: bf16, full-resolution tokens
    "full": (
        ModelConfig(patch_size=1),
        TrainConfig(
            batch_size=1_024,
            k_noise=8,
            max_steps=30_000,
            warmup_steps=1_000,
            lr=5e-4,
            eval_every=1_000,
            checkpoint_every=1_000,
            log_every=100,
            val_windows=20_000,
            val_samples=200,
            val_steps=5,
            patience=6,
        ),
    ),
}

# the demo model with the path target: every second 1..30 (what `paths.path_metrics_table`
# scores; the extra width is two small layers of the denoiser, docs/paths.md)
_SETTINGS["demo_paths"] = (
    dataclasses.replace(_SETTINGS["demo"][0], path_horizons=tuple(range(1, HORIZON_S + 1))),
    _SETTINGS["demo"][1],
)

# and the tiny one, for tests of the path report
_SETTINGS["tiny_paths"] = (
    dataclasses.replace(_SETTINGS["tiny"][0], path_horizons=tuple(range(1, HORIZON_S + 1))),
    _SETTINGS["tiny"][1],
)

_SPLITS = {
    "tiny": (1, 1, 1),
    "demo": (6, 2, 2),
    "full": (30, 5, 5),
    "demo_paths": (6, 2, 2),
    "tiny_paths": (1, 1, 1),
}

PROFILES: dict[str, Profile] = {
    name: Profile(name, *_SPLITS[name], *settings) for name, settings in _SETTINGS.items()
}
