"""The emulator's own table of what TikTok documents and what public clients recorded.

Kept apart from the client's `tiktok/constants.py` on purpose: a wording both shared could never
show that the client depends on something only we write. Each value says where it comes from
(shared/tiktok-api-notes.md gathers the sources); what no source shows is listed at the end as
a guess, and the client's tests cover both the guess and its absence.
"""

# Client access token (developers.tiktok.com/doc/client-access-token-management).
TOKEN_PATH = "/v2/oauth/token/"
TOKEN_LIFETIME_SECONDS = 7200
# Flat OAuth errors; the docs' example for a token request without its secret.
INVALID_CLIENT = "invalid_client"
INVALID_REQUEST = "invalid_request"
MISSING_SECRET_MESSAGE = "Client secret is missed in request."

# User info (developers.tiktok.com/doc/research-api-specs-query-user-info).
USER_INFO_PATH = "/v2/research/user/info/"
USER_INFO_FIELDS = (
    "display_name",
    "bio_description",
    "avatar_url",
    "is_verified",
    "follower_count",
    "following_count",
    "likes_count",
    "video_count",
    "bio_url",
)
API_HOST = "https://open.tiktokapis.com"

# Error codes (developers.tiktok.com/doc/tiktok-api-v2-error-handling).
OK = "ok"
ACCESS_TOKEN_INVALID = "access_token_invalid"
SCOPE_NOT_AUTHORIZED = "scope_not_authorized"
INVALID_PARAMS = "invalid_params"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
INTERNAL_ERROR = "internal_error"

# Texts. The docs' error-handling page gives these for its codes.
ACCESS_TOKEN_INVALID_MESSAGE = "The access token is invalid or not found in the request."
SCOPE_NOT_AUTHORIZED_MESSAGE = (
    "The user did not authorize the scope required for completing this request."
)
RATE_LIMIT_MESSAGE = "The API rate limit was exceeded. Please try again later."
# The documented not-found answer names the user: `username: X` is invalid: cannot find...
NOT_FOUND_MESSAGE = "`username: {username}` is invalid: cannot find the user"
# Recorded from the real API (a public client's notebook output): names no user, no reason.
REFUSED_MESSAGE = "API cannot return this user's information"
# Recorded from the real API: about the request, not its user, gone on a retry.
REQUEST_ERROR_MESSAGE = "Something went wrong. Please try again later."
# Recorded by a public Research API GUI, with `"data": {}` beside the error.
DAILY_QUOTA_LIMIT_EXCEEDED = "daily_quota_limit_exceeded"
DAILY_QUOTA_MESSAGE = "The API daily quota limit exceeded. Please try again later"

# Limits (developers.tiktok.com/doc/tiktok-api-v2-rate-limit, research-api-faq).
RATE_LIMIT_PER_MINUTE = 600
DAILY_QUOTA = 1000

# Guesses (no source shows them):
# - the description of an `invalid_client` token error: none is sent (the client reads the code);
# - the answer to a user-info request without a username: `invalid_params` without a message;
# - a `Retry-After` on short-term 429s: none unless a test sets `retry_after_seconds`;
# - a `Server` header: none is sent.
