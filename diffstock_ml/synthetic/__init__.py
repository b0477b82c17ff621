"""A deterministic synthetic market of 1 s bars in the raw layout, with its latent truth.

`python -m diffstock_ml.synthetic --raw data/demo/raw --profile demo` writes
`data/demo/raw/YYYYMMDD/SYMBOL.csv` (the raw contract) and, beside it,
`data/demo/raw_latent/YYYYMMDD.parquet` + `params.json` from which `simulate_forward`
draws the oracle forecast. The model is described in `diffstock_ml.synthetic.market`.
"""

from diffstock_ml.synthetic.config import PROFILES, UNIVERSE, SyntheticConfig
from diffstock_ml.synthetic.market import MarketDay, simulate_day, simulate_forward
from diffstock_ml.synthetic.params import MarketParams, SymbolParams
from diffstock_ml.synthetic.writer import (
    DaySummary,
    default_latent_root,
    generate_market,
    has_latent_state,
    write_day,
    write_params,
)

__all__ = [
    "PROFILES",
    "UNIVERSE",
    "DaySummary",
    "MarketDay",
    "MarketParams",
    "SymbolParams",
    "SyntheticConfig",
    "default_latent_root",
    "generate_market",
    "has_latent_state",
    "simulate_day",
    "simulate_forward",
    "write_day",
    "write_params",
]
