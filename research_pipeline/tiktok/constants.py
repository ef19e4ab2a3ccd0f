"""What the TikTok Research API documents, in one place, next to the page that says it.

Both the client and the emulator read these; the emulator must follow the docs, so a value here
changes only when TikTok's documentation does.
"""

# https://developers.tiktok.com/doc/client-access-token-management
TOKEN_PATH = "/v2/oauth/token/"
TOKEN_LIFETIME_SECONDS = 7200

# https://developers.tiktok.com/doc/research-api-specs-query-user-info
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

# The counts among them: whole numbers >= 0, checked before storing (tiktok.validation), kept
# when the data agreement allows it for accounts no longer available (warehouse.forget), the
# numbers every derived table is made of. The one list; the SQL is built from it or tested
# against it (research_pipeline_tests/test_storage.py).
COUNT_FIELDS = ("follower_count", "following_count", "likes_count", "video_count")

DEFAULT_BASE_URL = "https://open.tiktokapis.com"

# https://developers.tiktok.com/doc/tiktok-api-v2-error-handling
OK = "ok"
ACCESS_TOKEN_INVALID = "access_token_invalid"
SCOPE_NOT_AUTHORIZED = "scope_not_authorized"
SCOPE_PERMISSION_MISSED = "scope_permission_missed"
INVALID_PARAMS = "invalid_params"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
INTERNAL_ERROR = "internal_error"
# The one refusal recorded from the real API (a public client's notebook output): HTTP 400
# invalid_params with exactly this text, naming no user and no reason (private, under 18, or
# anything else). https://developers.tiktok.com/doc/research-api-specs-query-user-info
REFUSED_MESSAGE = "API cannot return this user's information"
# OAuth-style token errors (flat body: {"error": ..., "error_description": ...}).
INVALID_CLIENT = "invalid_client"
INVALID_REQUEST = "invalid_request"
# Documented example for a token request without its secret.
MISSING_SECRET_MESSAGE = "Client secret is missed in request."

# https://developers.tiktok.com/doc/tiktok-api-v2-rate-limit and .../research-api-faq
RATE_LIMIT_PER_MINUTE = 600
# The same generic text answers both the per-minute limit and the spent daily quota: clients
# must tell them apart by behaviour (a 429 that outlasts the minute window is the quota).
RATE_LIMIT_MESSAGE = "The API rate limit was exceeded. Please try again later."
# A public Research API GUI recorded the spent daily quota with its own code inside the 429
# (two other public scripts check for it), with "The API daily quota limit exceeded. Please try
# again later": when it comes, the day is over at once, no probing needed.
DAILY_QUOTA_LIMIT_EXCEEDED = "daily_quota_limit_exceeded"
DAILY_QUOTA_MESSAGE = "The API daily quota limit exceeded. Please try again later"
# Statuses of a 429: the API refused the request before doing any work (not counted by it).
RATE_LIMIT_STATUSES = (RATE_LIMIT_EXCEEDED, DAILY_QUOTA_LIMIT_EXCEEDED)
DAILY_QUOTA = 1000  # Research API requests per day per project, reset at 00:00 UTC.

# Statuses the client records for requests that never got a usable API answer.
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"  # may have reached the API: counted as spent
NOT_CONNECTED = "not_connected"  # the connection was never opened: the API never saw it
MALFORMED_RESPONSE = "malformed_response"
# ... and for API answers it does not take as they are.
REDIRECTED = "redirected"  # never followed: it could carry our token, or another host's answers
# A 4xx about the request, not its user ("Something went wrong. Please try again later."):
# retried like a 5xx; many in a row stop the run.
REQUEST_REJECTED = "request_rejected"
NOT_ABOUT_USER = "not_about_user"  # an error naming another username than the one asked

# Requests the daily quota did not count: refused before any work (429), or never sent.
NOT_SPENT_STATUSES = (*RATE_LIMIT_STATUSES, NOT_CONNECTED)
# Not a try of the user either: an expired token (the request was about our token).
NOT_A_TRY_STATUSES = (*NOT_SPENT_STATUSES, ACCESS_TOKEN_INVALID)
