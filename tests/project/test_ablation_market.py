"""`benchmarks/ablation.py --market-param NAME=VALUE` changes one number of the market, typed as
the field, and names the numbers it accepts when it does not know one."""

from __future__ import annotations

import pytest
from benchmark_scripts import load

from diffstock_ml.synthetic import PROFILES


@pytest.fixture(scope="module")
def ablation():
    return load("ablation")


def test_market_parameters_are_overridden_with_their_own_types(ablation) -> None:
    config = ablation.market_config("tiny", ["spread_bp=8", "seed=3"])
    assert (config.spread_bp, config.seed) == (8.0, 3)
    assert isinstance(config.seed, int)
    assert config.vol_30s_bp == PROFILES["tiny"].vol_30s_bp  # the rest as the profile's
    assert ablation.market_config("tiny", []) == PROFILES["tiny"]


@pytest.mark.parametrize("item", ["spread=8", "symbols=3", "start=20250101"])
def test_an_unknown_or_non_numeric_parameter_is_refused_with_the_known_ones(
    ablation, item: str
) -> None:
    with pytest.raises(SystemExit, match="spread_bp"):
        ablation.market_config("tiny", [item])


def test_a_value_that_is_not_a_number_is_refused(ablation) -> None:
    with pytest.raises(SystemExit, match="'wide' is not a float"):
        ablation.market_config("tiny", ["spread_bp=wide"])
