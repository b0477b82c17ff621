"""The experiments' design space: ablations change one option at a time over a profile."""

from diffstock_ml import study
from diffstock_ml.train.profiles import PROFILES


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
