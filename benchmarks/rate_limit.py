"""The documented 600 requests per sliding minute, with the emulator enforcing it.

The client runs with its default limiter; the emulator (own process, 20 ms latency) answers 429
to anything over 600 in a sliding minute. Each run sends --requests requests; reported per run:
the largest number of requests the client sent in any 60-second window (must be <= 600: the
evidence that we respect the limit, measured on our send times), the average rate over the whole
run (requests / (last send - first send); a sliding window lets the first 600 go at once, so
this overstates a long run) and after the first 600 requests (what a long run sustains), and
the 429s the emulator had to send (must be 0).
Usage: .venv/bin/python -m benchmarks.rate_limit [--requests 1800] [--runs 3]
       (about 3 minutes a run at 1800 requests)
"""

import argparse
import bisect
import statistics
import time

from benchmarks.common import KEY, SECRET, start_emulator, stats
from research_pipeline.tiktok import ClientSettings, ResearchApiClient

WINDOW_SECONDS = 60.0


def busiest_window(times: list[float]) -> int:
    """The most requests sent in any WINDOW_SECONDS (each window starting at a send)."""
    times = sorted(times)
    return max(
        bisect.bisect_left(times, start + WINDOW_SECONDS) - i for i, start in enumerate(times)
    )


def one_run(requests: int, run: int) -> tuple[int, float, float, int]:
    emulator, url = start_emulator(
        "--latency-ms", "20", "--rate-limit", "600", "--daily-quota", "off"
    )
    sent: list[float] = []
    try:
        settings = ClientSettings(
            client_key=KEY, client_secret=SECRET, base_url=url, daily_quota=None
        )
        with ResearchApiClient(settings, on_request=lambda r: sent.append(time.monotonic())) as c:
            results = list(c.iter_user_info([f"rate_{run}_{i}" for i in range(requests)]))
        outcomes = stats(url)["by_outcome"]
    finally:
        emulator.kill()
    assert len(results) == requests
    sent.sort()
    average = (len(sent) - 1) / (sent[-1] - sent[0]) * 60
    # After the first window: the first `limit` requests go at once (a sliding window allows
    # it), so the whole run's average overstates what a long run sustains.
    limit = ClientSettings(client_key="k", client_secret="s").rate_limit_per_minute
    steady = (len(sent) - 1 - limit) / (sent[-1] - sent[limit]) * 60
    rejected = sum(v for k, v in outcomes.items() if k.startswith("rate_limit"))
    return busiest_window(sent), average, steady, rejected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1800)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    limit = ClientSettings(client_key="k", client_secret="s").rate_limit_per_minute
    runs = [one_run(args.requests, run) for run in range(args.runs)]
    busiest = [r[0] for r in runs]
    average = [r[1] for r in runs]
    steady = [r[2] for r in runs]
    print(f"\n{args.requests} requests per run, {args.runs} runs, limit {limit} per minute")
    print("| measure | min / median / max |")
    print("|---|---|")
    print(f"| most requests in any 60 s window (limit {limit}) | {min(busiest)} / "
          f"{statistics.median(busiest)} / {max(busiest)} |")  # fmt: skip
    print(f"| average rate over the run, per minute | {min(average):.0f} / "
          f"{statistics.median(average):.0f} / {max(average):.0f} |")  # fmt: skip
    print(f"| average rate after the first {limit} requests, per minute | {min(steady):.0f} / "
          f"{statistics.median(steady):.0f} / {max(steady):.0f} |")  # fmt: skip
    print(f"| HTTP 429 sent by the emulator | {', '.join(str(r[3]) for r in runs)} |")


if __name__ == "__main__":
    main()
