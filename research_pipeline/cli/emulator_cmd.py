"""`research-pipeline emulator`: the offline Research API on loopback."""

from datetime import date

import click

from research_pipeline.emulator import EmulatorConfig, EmulatorServer
from research_pipeline.errors import ConfigurationError
from research_pipeline.tiktok.settings import parse_limit

_DEFAULTS = EmulatorConfig()


class _Limit(click.ParamType):
    """A whole number, or 'off' (the same reading as the TIKTOK_* limits)."""

    name = "N|off"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).strip() == "0":  # 0 read as 'off' was a trap: no limit at all
            self.fail("0 would mean none left; say 'off' for no limit, or at least 1", param, ctx)
        try:
            return parse_limit(str(value), None, param.opts[0])
        except ConfigurationError as exc:
            self.fail(str(exc), param, ctx)


# (option, EmulatorConfig field, type, help with its unit). The option's value goes to the field.
_KNOBS = (
    ("--seed", "seed", int, "Seed of the synthetic population and of fault decisions."),
    ("--client-key", "client_key", str, "The client key the token endpoint accepts."),
    ("--rate-limit", "rate_limit_per_minute", _Limit(), "User-info requests per sliding minute."),
    ("--daily-quota", "daily_quota", _Limit(), "User-info requests per UTC day."),
    ("--token-lifetime", "token_lifetime_seconds", float, "Seconds an access token stays valid."),
    ("--error-rate", "error_rate", float, "Share (0-1) answered HTTP 500 internal_error."),
    ("--malformed-rate", "malformed_rate", float,
     "Share (0-1) answered with broken JSON, no error object, or an HTML 504."),
    ("--reset-rate", "reset_rate", float, "Share (0-1) whose connection is reset, unanswered."),
    ("--burst-429-every", "burst_429_every", int,
     "Every Nth user-info request starts a burst of 429s (default: never)."),
    ("--retry-after", "retry_after_seconds", float, "Seconds in the Retry-After of burst 429s."),
    ("--latency-median", "latency_median_seconds", float,
     "Median seconds of a lognormal user-info latency (the real API's pace; 0: off)."),
    ("--latency-p99", "latency_p99_seconds", float, "Its 99th percentile, in seconds."),
    ("--timeout-504-rate", "timeout_504_rate", float,
     "Share (0-1) answered with a JSON 504 timeout after --timeout-504-after seconds."),
    ("--timeout-504-after", "timeout_504_seconds", float, "Seconds before such a 504."),
)  # fmt: skip


def _with_knobs(command):
    for flag, field, kind, text in reversed(_KNOBS):
        default = getattr(_DEFAULTS, field)
        command = click.option(
            flag, field, type=kind, default=default, show_default=default is not None, help=text
        )(command)
    return command


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8787, show_default=True, help="TCP port (0: any free).")
@click.option(
    "--client-secret",
    default=_DEFAULTS.client_secret,
    help="The client secret the token endpoint accepts (default: emulator-secret).",
)
@click.option("--latency-ms", type=float, default=0.0, show_default=True,
              help="Milliseconds added to every user-info answer.")  # fmt: skip
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The emulator's UTC date, YYYY-MM-DD (default: today).")  # fmt: skip
@_with_knobs
def emulator(host: str, port: int, client_secret: str, latency_ms: float, day, **knobs) -> int:
    """Run the offline Research API emulator on loopback.

    It serves the documented token and user-info endpoints with a synthetic population, limits
    and injectable faults. Point TIKTOK_API_BASE_URL at it.
    """
    config = EmulatorConfig(client_secret=client_secret, latency_seconds=latency_ms / 1000, **knobs)
    try:
        server = EmulatorServer(config, host=host, port=port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
        ) from None
    if day:
        server.clock.set_date(date(day.year, day.month, day.day))
    click.echo(
        f"Research API emulator on {server.url} (date {server.clock.today()}); Ctrl-C stops it"
    )
    # The default secret is public (it is in the docs); one given on the command line is not
    # echoed.
    secret = client_secret if client_secret == _DEFAULTS.client_secret else "<your --client-secret>"
    click.echo(
        f"  export TIKTOK_API_BASE_URL={server.url} TIKTOK_CLIENT_KEY={config.client_key} "
        f"TIKTOK_CLIENT_SECRET={secret}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
