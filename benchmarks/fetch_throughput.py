"""Fetch throughput: a plain sequential requests.post loop vs our client, side by side.

The emulator runs in its own process (50 ms latency, limits off) so it does not share the GIL
with the client. Usage: .venv/bin/python -m benchmarks.fetch_throughput [--users 1000]
"""

import argparse
import time

import requests

from benchmarks.common import KEY, SECRET, start_emulator
from research_pipeline.tiktok import ClientSettings, ResearchApiClient

FIELDS = (
    "display_name,bio_description,avatar_url,is_verified,follower_count,following_count,"
    "likes_count,video_count"
)


def sequential_loop(url: str, usernames: list[str]) -> float:
    """How existing wrappers do it: one request after the other."""
    token = requests.post(
        url + "/v2/oauth/token/",
        data={"client_key": KEY, "client_secret": SECRET, "grant_type": "client_credentials"},
        timeout=10,
    ).json()["access_token"]
    started = time.perf_counter()
    for name in usernames:
        requests.post(
            url + "/v2/research/user/info/",
            params={"fields": FIELDS},
            json={"username": name},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
    return time.perf_counter() - started


def our_client(url: str, usernames: list[str], **options) -> tuple[float, int]:
    settings = ClientSettings(
        client_key=KEY,
        client_secret=SECRET,
        base_url=url,
        rate_limit_per_minute=None,
        daily_quota=None,
        **options,
    )
    with ResearchApiClient(settings) as client:
        client.tokens.get()
        started = time.perf_counter()
        count = sum(1 for _ in client.iter_user_info(usernames))
        return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    usernames = [f"bench_user_{i}" for i in range(args.users)]
    process, url = start_emulator(
        "--latency-ms", str(args.latency_ms), "--rate-limit", "off", "--daily-quota", "off"
    )
    try:
        seq = sequential_loop(url, usernames)
        concurrency = ClientSettings(client_key="k", client_secret="s").concurrency
        ours, count = our_client(url, usernames)
    finally:
        process.terminate()
    assert count == args.users
    bound = concurrency / (args.latency_ms / 1000)
    print(f"{args.users} users, emulator latency {args.latency_ms:g} ms, limits off")
    print(f"{'variant':<40} {'seconds':>8} {'req/s':>8}")
    print(f"{'(a) sequential requests.post loop':<40} {seq:>8.2f} {args.users / seq:>8.1f}")
    print(
        f"{f'(b) ResearchApiClient, concurrency {concurrency}':<40} {ours:>8.2f} "
        f"{args.users / ours:>8.1f}"
    )
    print(
        f"ratio (b)/(a): {seq / ours:.2f}x; (b) reaches {args.users / ours / bound:.0%} of the "
        f"concurrency/latency bound ({bound:.0f} req/s)"
    )


if __name__ == "__main__":
    main()
