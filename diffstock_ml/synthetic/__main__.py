"""`python -m diffstock_ml.synthetic --raw data/demo/raw --profile demo`: write a synthetic market.

Prints one line per session day (written or skipped) and a total; the latent truth goes to
`<raw>_latent` beside the raw folder unless `--latent` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from diffstock_ml.calendar import parse_day
from diffstock_ml.synthetic.config import PROFILES, SyntheticConfig
from diffstock_ml.synthetic.writer import DaySummary, default_latent_root, generate_market


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffstock-synthetic",
        description="Write a synthetic market of 1 s bars as RAW/YYYYMMDD/SYMBOL.csv files.",
    )
    parser.add_argument("--raw", type=Path, required=True, help="raw folder to write into")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    parser.add_argument("--symbols", type=int, help="use the first N symbols of the universe")
    parser.add_argument("--start", help="first session, YYYYMMDD (needs --end)")
    parser.add_argument("--end", help="last session, YYYYMMDD (needs --start)")
    parser.add_argument("--seed", type=int, help="random seed (default: the profile's, 7)")
    parser.add_argument("--latent", type=Path, help="latent folder (default: <raw>_latent)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite days already present")
    return parser


def config_from_args(args: argparse.Namespace) -> SyntheticConfig:
    """The profile's config with the command line's overrides applied (and validated)."""
    cfg = PROFILES[args.profile]
    if (args.start is None) != (args.end is None):
        raise ValueError("--start and --end go together")
    if args.start is not None:
        for key in (args.start, args.end):
            parse_day(key)
        cfg = replace(cfg, start=args.start, end=args.end)
    if args.symbols is not None:
        cfg = cfg.with_symbols(args.symbols)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    cfg.sessions()  # fails early on a range without sessions
    return cfg


def _report(s: DaySummary) -> None:
    if s.skipped:
        print(f"{s.day:%Y%m%d}  skipped: all {s.symbols} symbols already present", flush=True)
    else:
        print(
            f"{s.day:%Y%m%d}  {s.symbols} symbols  {s.rows:,} rows  {s.seconds:.1f} s", flush=True
        )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    latent = args.latent or default_latent_root(args.raw)
    began = time.perf_counter()
    try:
        days = generate_market(
            cfg, args.raw, latent, workers=args.workers, overwrite=args.overwrite, on_day=_report
        )
    except ValueError as exc:  # e.g. the latent folder holds another market's params.json
        print(f"diffstock-synthetic: error: {exc}", file=sys.stderr)
        return 2
    written = sum(not s.skipped for s in days)
    print(
        f"done: {written} days written, {len(days) - written} skipped, raw {args.raw}, "
        f"latent {latent}, {time.perf_counter() - began:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
