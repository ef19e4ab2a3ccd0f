"""Fetch throughput: our client against what researchers run today, side by side.

Variants, each fetching the same --users usernames from the emulator (its own process, so it
does not share our GIL; --latency-ms per answer; limits off), interleaved, --runs times:
  (a) a bare `requests.post` loop: a new connection per request;
  (b) a keep-alive sequential loop: one `requests.Session`, one request after the other;
  (c) tiktok-research-api-helper 0.1.3 (CybersecurityForDemocracy's public client, a dev
      dependency), its `fetch_user_info` one user after the other, sessions sent to the
      emulator by a transport adapter (it hard-codes TikTok's host);
  (d) `ResearchApiClient.iter_user_info` at its default concurrency.
The bound of a sequential client is 1 / latency; ours is concurrency / latency.

Usage: .venv/bin/python -m benchmarks.fetch_throughput [--users 1000] [--latency-ms 50] [--runs 3]
"""

import argparse
import statistics
import time

import requests
import tiktok_research_api_helper.api_client as helper

from benchmarks.common import KEY, SECRET, public_client, start_emulator
from research_pipeline.tiktok import ClientSettings, ResearchApiClient

FIELDS = (
    "display_name,bio_description,avatar_url,is_verified,follower_count,following_count,"
    "likes_count,video_count"
)


def _token(url: str) -> str:
    return requests.post(
        url + "/v2/oauth/token/",
        data={"client_key": KEY, "client_secret": SECRET, "grant_type": "client_credentials"},
        timeout=10,
    ).json()["access_token"]


def bare_loop(url: str, usernames: list[str]) -> float:
    token = _token(url)
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


def keep_alive_loop(url: str, usernames: list[str]) -> float:
    token = _token(url)
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        for name in usernames:
            session.post(
                url + "/v2/research/user/info/",
                params={"fields": FIELDS},
                json={"username": name},
                timeout=10,
            ).json()
        return time.perf_counter() - started


def public_wrapper(url: str, usernames: list[str]) -> float:
    client = public_client(url)
    _ask(client, usernames[0])  # its token
    started = time.perf_counter()
    for name in usernames:
        _ask(client, name)
    return time.perf_counter() - started


def _ask(client, name: str) -> None:
    """One user through the wrapper; a user not found or refused is an answer too (it raises)."""
    try:
        client.fetch_user_info(helper.TikTokUserInfoRequest(username=name))
    except (helper.InvalidUsernameError, helper.RefusedUsernameError):
        pass


def our_client(url: str, usernames: list[str]) -> float:
    settings = ClientSettings(client_key=KEY, client_secret=SECRET, base_url=url,
                              rate_limit_per_minute=None, daily_quota=None)  # fmt: skip
    with ResearchApiClient(settings) as client:
        client.tokens.get()
        started = time.perf_counter()
        count = sum(1 for _ in client.iter_user_info(usernames))
        elapsed = time.perf_counter() - started
    assert count == len(usernames)
    return elapsed


VARIANTS = {
    "(a) bare requests.post loop (new connection each)": bare_loop,
    "(b) keep-alive sequential loop (requests.Session)": keep_alive_loop,
    "(c) tiktok-research-api-helper 0.1.3, sequential": public_wrapper,
    "(d) ResearchApiClient": our_client,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    concurrency = ClientSettings(client_key="k", client_secret="s").concurrency
    process, url = start_emulator(
        "--latency-ms", str(args.latency_ms), "--rate-limit", "off", "--daily-quota", "off"
    )
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for run in range(args.runs):
            usernames = [f"bench_{run}_{i}" for i in range(args.users)]
            for name, variant in VARIANTS.items():  # interleaved: the same machine state
                rates[name].append(args.users / variant(url, usernames))
    finally:
        process.kill()
    latency = args.latency_ms / 1000
    bounds = {name: 1 / latency for name in VARIANTS}
    bounds["(d) ResearchApiClient"] = concurrency / latency
    keep_alive = statistics.median(rates["(b) keep-alive sequential loop (requests.Session)"])
    wrapper = statistics.median(rates["(c) tiktok-research-api-helper 0.1.3, sequential"])
    print(f"\n{args.users} users per run, emulator latency {args.latency_ms:g} ms, limits off, "
          f"{args.runs} runs interleaved; our concurrency {concurrency}")  # fmt: skip
    print("| variant | users/s min / median / max | bound (formula) | median share of bound | "
          "vs keep-alive loop | vs public wrapper |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        formula = "concurrency / latency" if name.startswith("(d)") else "1 / latency"
        print(f"| {name} | {min(values):.1f} / {median:.1f} / {max(values):.1f} | "
              f"{bounds[name]:.0f} ({formula}) | {median / bounds[name]:.0%} | "
              f"{median / keep_alive:.2f}x | {median / wrapper:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
