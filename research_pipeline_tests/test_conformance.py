"""An independent public client, written against the real Research API, run against our emulator
(tiktok-research-api-helper, CybersecurityForDemocracy's tiktok-library, a test dependency only):
its answers and errors must come out as that client expects. It hard-codes TikTok's host, so its
sessions are given a transport adapter that sends those URLs to the emulator on 127.0.0.1."""

import pytest
import tiktok_research_api_helper.api_client as api_client

from research_pipeline.emulator.redirect import session_to_emulator
from research_pipeline.tiktok import ResearchApiClient
from research_pipeline_tests.helpers import (
    EMULATOR_KEY,
    EMULATOR_SECRET,
    client_settings,
    find_usernames,
)


def public_client(emulator, secret: str = EMULATOR_SECRET):
    return api_client.TikTokApiRequestClient(
        credentials=api_client.TikTokCredentials(client_secret=secret, client_key=EMULATOR_KEY),
        access_token_fetcher_session=session_to_emulator(emulator.url),
        api_request_session=session_to_emulator(emulator.url),
        max_api_rate_limit_retries=1,
    )


def test_a_public_client_reads_user_info_as_our_client_does(emulator):
    users = find_usernames(emulator, "active", 3)
    theirs = public_client(emulator)
    with ResearchApiClient(client_settings(emulator)) as ours:
        for user in users:
            answer = theirs.fetch_user_info(api_client.TikTokUserInfoRequest(username=user))
            mine = ours.fetch_user_info(user)
            assert answer.error["code"] == "ok"
            for field in ("display_name", "follower_count", "likes_count", "is_verified"):
                assert answer.user_info[field] == mine.fields[field]


@pytest.mark.parametrize(
    ("kind", "their_error"),
    [
        ("unknown", "InvalidUsernameError"),
        ("private", "RefusedUsernameError"),
        ("banned", "RefusedUsernameError"),
    ],
)
def test_a_public_client_sees_not_found_private_and_banned_as_it_expects(
    emulator, kind, their_error
):
    user = find_usernames(emulator, kind)[0]
    with pytest.raises(getattr(api_client, their_error)):
        public_client(emulator).fetch_user_info(api_client.TikTokUserInfoRequest(username=user))


def test_a_public_client_sees_the_quota_as_a_rate_limit_error(emulator):
    emulator.config.daily_quota = 0
    with pytest.raises(api_client.ApiRateLimitError):
        public_client(emulator).fetch_user_info(api_client.TikTokUserInfoRequest(username="alice"))


def test_a_public_client_is_refused_wrong_credentials(emulator):
    with pytest.raises(api_client.ApiRejectedCredentialsError):
        public_client(emulator, secret="not-the-secret")
