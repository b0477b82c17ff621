"""Model experiments as an Optuna study on validation days; one MLflow run per trial.

    python -m dagster_project.study --as-of 20251113 --design ablation
    python -m dagster_project.study --as-of 20251113 --design search --trials 20

Reads the windows of the sessions ending at `--as-of` from the lake (the `windows` asset must be
materialised, e.g. by the README's run command), splits them by the profile's days
(DIFFSTOCK_PROFILE) and scores every trial on the VALIDATION days only (`run_trial`): the test
days stay untouched for the report. Before the trials, the reference models (EWMA, both
likelihood heads with the profile's training budget, the oracle on synthetic data) are scored on
the same anchors and logged as run "reference". All runs go to one MLflow experiment
(`diffstock-study` by default), so the MLflow UI compares them side by side.

`ablation` trains the profile's configuration and then every other value of each option of
`diffstock_ml.study.OPTIONS`, one change at a time; `search` lets Optuna's TPE sampler combine
them. Results: a markdown table and JSON under `$DIFFSTOCK_DATA/study/<name>/`, and on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import optuna

from dagster_project.settings import Settings
from diffstock_assets.gates import require_passed
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.partitions import sessions_ending
from diffstock_assets.resources import WINDOWS, LakeResource
from diffstock_ml.device import select_device
from diffstock_ml.experiments import ScoreConfig, score_models
from diffstock_ml.splits import split_days
from diffstock_ml.study import (
    ablation,
    changed_options,
    markdown_table,
    options_for,
    reference_models,
    run_design,
)
from diffstock_ml.train.profiles import PROFILES, Profile
from diffstock_ml.windows import DayArrays


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    profile = PROFILES[settings.profile]
    name = args.name or f"{args.design}-{args.as_of}-{profile.name}"
    try:
        train_days, val_days = _validation_inputs(settings, profile, args.as_of)
    except ValueError as error:
        parser.error(str(error))
    device = select_device(settings.device)
    mlflow = MLflowResource(
        tracking_uri=settings.mlflow_tracking_uri,
        artifact_location=str(settings.mlflow_artifacts),
        experiment_name=args.experiment,
    )
    tags = {"study": name, "as_of": args.as_of, "profile": profile.name}
    score = ScoreConfig(anchor_stride_s=args.stride, n_samples=args.samples)
    references = reference_models(profile, train_days, settings.raw, device)
    reference_scores = score_models(references, val_days, score)
    with mlflow.start_run("reference", tags=tags):
        mlflow.log_metrics(
            {k: v for n, s in reference_scores.items() for k, v in s.flat(f"{n}.").items()}
        )

    window_length = train_days[0].config.length  # `context_s` may only shorten it
    options = options_for(window_length)
    scratch = Path(tempfile.mkdtemp(prefix="diffstock-study-"))
    rows: list[dict[str, Any]] = []

    def objective(optuna_trial: optuna.Trial) -> float:
        design = {k: optuna_trial.suggest_categorical(k, [None, *v]) for k, v in options.items()}
        number = optuna_trial.number
        folder = scratch / str(number)
        trial, metrics, _ = run_design(
            profile, design, train_days, val_days, reference_scores, folder, device, score
        )
        with mlflow.start_run(f"trial {number}", tags=tags | {"changed": _changed(design)}):
            mlflow.log_params(
                {"options": design, "model": dataclasses.asdict(trial.model)}
                | {"train": dataclasses.asdict(trial.train)}
            )
            mlflow.log_metrics(metrics)
        rows.append({"trial": number, "options": design, **metrics})
        for key, value in metrics.items():
            optuna_trial.set_user_attr(key, value)
        return metrics["crps_bp"]

    study, n_trials = _study(args, name, profile, window_length)
    try:
        study.optimize(objective, n_trials=n_trials)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _write(settings.data / "study" / name, name, rows, reference_scores)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--as-of", required=True, help="as-of session YYYYMMDD")
    parser.add_argument("--design", choices=("ablation", "search"), default="ablation")
    parser.add_argument("--trials", type=int, default=20, help="search: number of trials")
    parser.add_argument("--name", help="study name (default: <design>-<as-of>-<profile>)")
    parser.add_argument("--experiment", default="diffstock-study", help="MLflow experiment")
    parser.add_argument("--only", nargs="*", help="ablation: only these options (and the base)")
    parser.add_argument("--stride", type=int, default=30, help="score every N-th second")
    parser.add_argument("--samples", type=int, default=100, help="samples per scored anchor")
    return parser


def _validation_inputs(
    settings: Settings, profile: Profile, as_of: str
) -> tuple[list[DayArrays], list[DayArrays]]:
    """The training and validation days' windows of the sessions ending at `as_of` (never the
    test days); a ValueError naming the days that are missing or failed a blocking check."""
    days = sessions_ending(as_of, profile.days)
    splits = split_days(days, profile.train_days, profile.val_days, profile.test_days)
    lake = LakeResource(root=str(settings.lake))
    needed = (*splits.train, *splits.val)
    missing = [d for d in needed if not lake.has_windows(d)]
    if missing:
        raise ValueError(
            f"no windows for {', '.join(missing)} under {lake.root.rstrip('/')}/{WINDOWS}: "
            "materialise clean_bars, features and windows for those days first"
        )
    for day in needed:
        for asset in ("clean_bars", WINDOWS):
            try:
                # days built by `diffstock_ml.pipeline` (no Dagster) have no verdict to read
                require_passed(lake, asset, day, f"the study as of {as_of}", allow_missing=True)
            except dg.Failure as failure:
                raise ValueError(str(failure.description)) from None
    return [lake.read_windows(d) for d in splits.train], [lake.read_windows(d) for d in splits.val]


def _study(
    args: argparse.Namespace, name: str, profile: Profile, window_length: int
) -> tuple[optuna.Study, int]:
    """The Optuna study with its first trials queued, and how many trials to run: an ablation
    queues every one-option design (those of `--only`), a search only the profile itself."""
    study = optuna.create_study(
        study_name=name, direction="minimize", sampler=optuna.samplers.TPESampler(seed=0)
    )
    designs = ablation(profile, window_length)
    if args.design == "search":
        study.enqueue_trial(designs[0])  # the search starts from the profile itself
        return study, args.trials
    options = options_for(window_length)
    if args.only:
        designs = [d for d in designs if all(d[k] is None for k in options if k not in args.only)]
    for design in designs:
        study.enqueue_trial(design)
    return study, len(designs)


def _changed(design: dict[str, Any]) -> str:
    return ", ".join(changed_options(design)) or "profile"


def _write(folder: Path, name: str, rows: list[dict], references) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "study": name,
        "references": {k: v.flat() for k, v in references.items()},
        "trials": rows,
    }
    (folder / "study.json").write_text(json.dumps(payload, indent=1, default=str))
    table = markdown_table(rows, references)
    (folder / "study.md").write_text(f"# {name}\n\n{table}\n")
    print(table)
    print(f"\nwritten to {folder}")


if __name__ == "__main__":
    raise SystemExit(main())
