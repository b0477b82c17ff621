"""The experiment study command on the tiny market: trials on validation days, MLflow runs."""

import json
from pathlib import Path

import mlflow
import optuna
import pytest

from dagster_project import study
from diffstock_ml.study import ablation, changed_options
from diffstock_ml.train.profiles import PROFILES


def test_study_scores_trials_on_validation_days_and_logs_one_run_each(
    tiny_market: Path, tiny_windows: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "windows").symlink_to(tiny_windows[0].parent)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        "DIFFSTOCK_DATA": str(tmp_path),
        "DIFFSTOCK_LAKE": str(lake),
        "DIFFSTOCK_RAW": str(tiny_market),
        "DIFFSTOCK_PROFILE": "tiny",
        "MLFLOW_TRACKING_URI": tracking,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    as_of = tiny_windows[-1].name
    argv = ["--as-of", as_of, "--only", "parameterisation", "--stride", "120", "--samples", "16"]
    assert study.main(argv) == 0

    result = json.loads((tmp_path / "study" / f"ablation-{as_of}-tiny" / "study.json").read_text())
    assert [t["options"]["parameterisation"] for t in result["trials"]] == [None, "direct"]
    assert {"ewma_gaussian", "gaussian_head", "student_t_head", "oracle"} <= set(
        result["references"]
    )
    for trial in result["trials"]:
        assert trial["crps_bp"] > 0 and 0 <= trial["coverage_90"] <= 1
        assert "skill_vs_best_head" in trial and "gap_closed" in trial
    runs = mlflow.MlflowClient(tracking).search_runs(
        [mlflow.MlflowClient(tracking).get_experiment_by_name("diffstock-study").experiment_id]
    )
    names = sorted(r.info.run_name for r in runs)
    assert names == ["reference", "trial 0", "trial 1"]
    trial_run = next(r for r in runs if r.info.run_name == "trial 1")
    assert trial_run.data.params["options.parameterisation"] == "direct"
    assert trial_run.data.metrics["crps_bp"] == pytest.approx(result["trials"][1]["crps_bp"])


def test_study_names_the_days_whose_windows_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DIFFSTOCK_DATA", str(tmp_path))
    monkeypatch.setenv("DIFFSTOCK_PROFILE", "tiny")
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--as-of", "20251104"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "no windows for 20251031, 20251103" in message and "materialise" in message


def test_a_search_queues_the_profile_then_runs_its_trials() -> None:
    args = study._parser().parse_args(
        ["--as-of", "20251104", "--design", "search", "--trials", "3"]
    )
    built, n_trials = study._study(args, "search", PROFILES["tiny"], 120)
    waiting = built.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert n_trials == 3
    assert [t.system_attrs["fixed_params"] for t in waiting] == [ablation(PROFILES["tiny"], 120)[0]]


def test_an_ablation_of_one_option_queues_the_profile_and_each_other_value() -> None:
    args = study._parser().parse_args(["--as-of", "20251104", "--only", "lr"])
    built, n_trials = study._study(args, "ablation", PROFILES["tiny"], 120)
    designs = [
        t.system_attrs["fixed_params"]
        for t in built.get_trials(states=(optuna.trial.TrialState.WAITING,))
    ]
    assert n_trials == len(designs) >= 2
    assert designs[0] == ablation(PROFILES["tiny"], 120)[0]  # the profile, unchanged
    assert all([c.split("=")[0] for c in changed_options(d)] == ["lr"] for d in designs[1:])
