"""The experiments' design space: ablations change one option at a time over a profile."""

import dataclasses

import pytest
import torch

from diffstock_ml import experiments, study
from diffstock_ml.batches import Normaliser
from diffstock_ml.model import DiffusionForecaster
from diffstock_ml.model.bundle import make_bundle
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import load_day_arrays

TINY = PROFILES["tiny"]


def test_ablation_starts_from_the_profile_and_changes_one_option_at_a_time() -> None:
    profile = PROFILES["demo"]
    base, *others = study.ablation(profile)
    assert set(base.values()) == {None}
    assert study.make_trial(profile, base).model == profile.model
    assert study.make_trial(profile, base).train == profile.train
    for design in others:
        (changed,) = [k for k, v in design.items() if v is not None]
        assert design[changed] != study.profile_value(profile, changed), "not a change"
    assert ("parameterisation", "direct") in {
        (k, v) for d in others for k, v in d.items() if v is not None
    }


def test_make_trial_applies_options_over_the_profile() -> None:
    profile = PROFILES["demo"]
    trial = study.make_trial(
        profile, {"parameterisation": "direct", "width": 2, "k_noise": None, "sampler_steps": 20}
    )
    assert trial.model.parameterisation == "direct"
    assert trial.model.d_model == 2 * profile.model.d_model
    assert trial.train.k_noise == profile.train.k_noise  # None keeps the profile's
    assert trial.sampler.steps == trial.train.val_steps == 20
    assert study.changed_options(trial.options) == [
        "parameterisation=direct",
        "width=2",
        "sampler_steps=20",
    ]


def test_sequence_lengths_are_crops_of_the_windows_so_300_needs_300_s_windows() -> None:
    profile = PROFILES["demo"]
    contexts = {
        length: [d["context_s"] for d in study.ablation(profile, length) if d["context_s"]]
        for length in (120, 300)
    }
    assert contexts == {120: [60], 300: [60, 120]}  # the whole window is the profile's own
    assert study.options_for(300)["context_s"] == (60, 120)
    assert study.make_trial(profile, {"context_s": 120}).model.context_s == 120


def test_own_head_zeroes_a_copy_of_the_denoiser_output_so_it_samples_the_head() -> None:
    config = PROFILES["tiny"].model  # a Student-t head with the Gaussianised residual
    model = DiffusionForecaster(config, n_features=3)
    normaliser = Normaliser(median=(0.0,) * 3, scale=(1.0,) * 3)
    bundle = make_bundle(
        config, model.state_dict(), normaliser, ("a", "b", "c"), 20, spread_factor=0.9
    )
    head = study.own_head(bundle)
    assert head.spread_factor is None  # fitted again for what it samples
    assert not head.model.denoiser.output.weight.any() and not head.model.denoiser.output.bias.any()
    assert bundle.model.denoiser.output.weight.any()  # the bundle itself is left as it was
    x = torch.randn(2, 20, 3)
    cond = head.model.encode(x)
    t = torch.tensor([500, 10])
    x_t = torch.randn(2, 1)
    torch.testing.assert_close(head.model.denoiser(x_t, t, cond), torch.zeros(2, 1))


def test_every_sampler_option_is_what_its_name_says() -> None:
    # the names are what the MLflow runs and experiments.md compare: "sde_dpmpp_2m_10" must be
    # 10 steps of SDE-DPM-Solver++ whatever the default step count is
    for name, sampler in study.SAMPLERS.items():
        kind, steps = name.removesuffix("_eta1").rsplit("_", 1)
        assert (sampler.sampler, sampler.steps) == (kind, int(steps)), name
        assert (sampler.eta == 1.0) == name.endswith("_eta1"), name


def test_a_trial_with_other_settings_never_resumes_another_trials_checkpoints(
    tmp_path, tiny_windows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_trial` keeps checkpoints per settings: the same trial number under another seed
    (ablation.py --seed) trained afresh instead of resuming the finished run of the first."""
    folders = []

    class Stop(Exception):
        pass

    def fake_train(model, train, train_days, val_days, normaliser, checkpoint_dir, *args):
        folders.append(checkpoint_dir)
        raise Stop  # the folder is all this test needs

    monkeypatch.setattr(experiments, "train", fake_train)
    days = [load_day_arrays(tiny_windows[0])]
    for seed in (0, 1, 0):
        train = dataclasses.replace(TINY.train, seed=seed)
        with pytest.raises(Stop):
            experiments.run_trial(TINY.model, train, days, days, tmp_path, "cpu")
    assert folders[0] != folders[1]  # another seed: another folder
    assert folders[0] == folders[2]  # the same settings: the same folder, so it resumes
    assert all(folder.parent == tmp_path for folder in folders)
