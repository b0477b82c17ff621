"""Constants of the market the forecast is about, defined once and imported everywhere.

The horizon is fixed by the data, not configurable: the target column `ret_30s`, the scale
`sigma_30s` and every baseline are built for it. Changing it means renaming those columns too.
"""

from __future__ import annotations

TICK = 0.01  # the price grid of US stocks above $1, dollars
HORIZON_S = 30  # the forecast horizon: the target is close[t + HORIZON_S] / close[t] - 1
