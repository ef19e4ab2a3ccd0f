"""Sustained rate under the documented 600 requests/minute window, with the emulator enforcing it.

The client runs with its default limiter (600/minute); the emulator (own process, 20 ms latency)
answers 429 to anything over 600 in a sliding minute. Sends --requests requests and reports the
sustained rate after the first full window, and how many 429s the emulator had to send.
Usage: .venv/bin/python -m benchmarks.rate_limit [--requests 1800]   (takes about 2 minutes)
"""

import argparse
import time

from benchmarks.common import KEY, SECRET, start_emulator, stats
from research_pipeline.tiktok import ClientSettings, ResearchApiClient


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1800)
    args = parser.parse_args()
    emulator, url = start_emulator(
        "--latency-ms", "20", "--rate-limit", "600", "--daily-quota", "off"
    )
    sent: list[float] = []
    try:
        settings = ClientSettings(
            client_key=KEY, client_secret=SECRET, base_url=url, daily_quota=None
        )
        with ResearchApiClient(settings, on_request=lambda r: sent.append(time.monotonic())) as c:
            users = [f"rate_user_{i}" for i in range(args.requests)]
            results = list(c.iter_user_info(users))
        outcomes = stats(url)["by_outcome"]
    finally:
        emulator.terminate()
    limit = settings.rate_limit_per_minute
    # Sliding-window throughput: how long 600 consecutive requests take, at the median.
    spans = sorted(sent[i + limit] - sent[i] for i in range(len(sent) - limit))
    steady = limit / spans[len(spans) // 2] * 60
    rejected = sum(v for k, v in outcomes.items() if k.startswith("rate_limit"))
    print(f"{len(results)} users, {len(sent)} requests, limiter {limit}/min, emulator enforcing it")
    print(
        f"sustained rate (600 consecutive requests per median span): {steady:.0f}/min = "
        f"{steady / limit:.1%} of {limit}/min; HTTP 429 from the emulator: {rejected}"
    )


if __name__ == "__main__":
    main()
