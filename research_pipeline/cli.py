"""The `research-pipeline` command."""

import argparse
import logging
import sys
from datetime import date

from research_pipeline.emulator import EmulatorConfig, EmulatorServer


def _limit(value: str) -> int | None:
    return None if value.lower() in ("off", "none", "0") else int(value)


def add_emulator_parser(commands) -> None:
    parser = commands.add_parser(
        "emulator",
        help="run the offline Research API emulator on loopback",
        description="Serve the documented token and user-info endpoints with a synthetic "
        "population, limits and injectable faults. Point TIKTOK_API_BASE_URL at it.",
    )
    defaults = EmulatorConfig()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--client-key", default=defaults.client_key)
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument(
        "--rate-limit",
        type=_limit,
        default=defaults.rate_limit_per_minute,
        help="requests per minute, or 'off' (default: %(default)s)",
    )
    parser.add_argument(
        "--daily-quota",
        type=_limit,
        default=defaults.daily_quota,
        help="requests per UTC day, or 'off' (default: %(default)s)",
    )
    parser.add_argument("--token-lifetime", type=float, default=defaults.token_lifetime_seconds)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of HTTP 500s")
    parser.add_argument("--malformed-rate", type=float, default=0.0)
    parser.add_argument("--reset-rate", type=float, default=0.0)
    parser.add_argument("--burst-429-every", type=int, default=None)
    parser.add_argument("--retry-after", type=float, default=defaults.retry_after_seconds)
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="the emulator's UTC date (YYYY-MM-DD); default: today",
    )
    parser.set_defaults(func=run_emulator)


def run_emulator(args: argparse.Namespace) -> int:
    config = EmulatorConfig(
        seed=args.seed,
        client_key=args.client_key,
        client_secret=args.client_secret,
        rate_limit_per_minute=args.rate_limit,
        daily_quota=args.daily_quota,
        token_lifetime_seconds=args.token_lifetime,
        latency_seconds=args.latency_ms / 1000,
        error_rate=args.error_rate,
        malformed_rate=args.malformed_rate,
        reset_rate=args.reset_rate,
        burst_429_every=args.burst_429_every,
        retry_after_seconds=args.retry_after,
    )
    server = EmulatorServer(config, host=args.host, port=args.port)
    if args.date:
        server.clock.set_date(args.date)
    print(f"Research API emulator on {server.url} (date {server.clock.today()}); Ctrl-C stops it")
    print(f"  export TIKTOK_API_BASE_URL={server.url} TIKTOK_CLIENT_KEY={config.client_key}")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="research-pipeline",
        description="Repeatable TikTok Research API snapshots, orchestrated by Dagster.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_emulator_parser(commands)
    from research_pipeline import demo

    demo.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
