"""Command line of ``python -m bench.compare``: settings in, table, JSON and plot out."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.compare import pinning, report
from bench.compare.run import Settings, run
from bench.compare.setups import SETUPS
from bench.load_h2load import H2loadError, ensure_h2load
from bench.load_run import LoadError

__all__ = ["main", "make_parser", "settings_from"]

RESULTS = Path(__file__).resolve().parents[1] / "results"
QUICK = {"duration": 2.0, "saturation": 2.0, "warm_up": 0.5, "rates": (500, 1000), "rounds": 1}


def _rates(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(rate) for rate in text.split(",") if rate.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of whole rates: {text!r}") from exc


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def make_parser() -> argparse.ArgumentParser:
    """The command line flags."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    setups = ", ".join(SETUPS)
    parser.add_argument("--only", type=_names, help=f"comma-separated setups ({setups})")
    parser.add_argument("--rates", type=_rates, help="offered rates, req/s (250,...,4000)")
    parser.add_argument("--duration", type=float, help="seconds per rate and round (5)")
    parser.add_argument("--rounds", type=int, help="rounds over all rates (3); rows are medians")
    parser.add_argument("--saturation", type=float, help="seconds of saturation per round (5)")
    parser.add_argument("--warm-up", type=float, help="seconds of warm-up per setup (2)")
    parser.add_argument("--clients", type=int, default=8, help="saturation connections (8)")
    parser.add_argument("--streams", type=int, default=4, help="streams per connection (4)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 2 s at 500,1000"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    parser.add_argument(
        "--envoy-with-load",
        action="store_true",
        help="move Envoy to the load generator's CPU, so an ext_authz server has a CPU "
        "of its own (as in a mesh, where the sidecar and authz run in different pods)",
    )
    parser.add_argument("--out", type=Path, help="results JSON (bench/results/compare-*.json)")
    parser.add_argument("--plot", type=Path, help="p99 plot PNG (next to the JSON)")
    parser.add_argument("--cerbos-cache", type=Path, help="where Cerbos is installed")
    parser.add_argument("--keep", type=Path, help="keep logs and h2load files in this dir")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags over --quick over the defaults; raises ValueError on nonsense."""
    quick: dict[str, Any] = QUICK if args.quick else {}

    def pick(flag: object, key: str) -> object:
        return flag if flag is not None else quick.get(key)

    chosen = {
        "duration_s": pick(args.duration, "duration"),
        "saturation_s": pick(args.saturation, "saturation"),
        "warmup_s": pick(args.warm_up, "warm_up"),
        "rates": pick(args.rates, "rates"),
        "rounds": pick(args.rounds, "rounds"),
        "setups": args.only,
        "cerbos_cache": args.cerbos_cache,
    }
    given = {name: value for name, value in chosen.items() if value is not None}
    return Settings(clients=args.clients, streams=args.streams, **given)


def _progress(line: str) -> None:
    """Progress goes to stderr, so stdout holds only the table and the headlines."""
    print(line, file=sys.stderr, flush=True)


def _write(results: dict[str, Any], out: Path, plot_path: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    report.plot(results, plot_path)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table and headlines, write JSON and PNG."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or RESULTS / f"compare-{stamp}.json"
    plot_path: Path = args.plot or out.with_suffix(".png")
    try:
        h2load = ensure_h2load()
        with tempfile.TemporaryDirectory(prefix="authz-compare-") as scratch:
            work = args.keep or Path(scratch)
            work.mkdir(parents=True, exist_ok=True)
            layout = pinning.plan(not args.no_pin, split_envoy=args.envoy_with_load)
            results = run(settings, h2load, layout, work, _progress)
    except (H2loadError, LoadError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 1
    results["headlines"] = report.headline_values(results)
    _write(results, out, plot_path)
    print(report.table(results))
    print()
    print("\n".join(report.headlines(results["headlines"])))
    print(f"\nresults: {out}\nplot:    {plot_path}")
    failed = [name for name, setup in results["setups"].items() if setup["status"] == "failed"]
    return 1 if failed else 0
