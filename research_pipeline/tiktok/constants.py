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

DEFAULT_BASE_URL = "https://open.tiktokapis.com"

# https://developers.tiktok.com/doc/tiktok-api-v2-error-handling
OK = "ok"
ACCESS_TOKEN_INVALID = "access_token_invalid"
SCOPE_NOT_AUTHORIZED = "scope_not_authorized"
SCOPE_PERMISSION_MISSED = "scope_permission_missed"
INVALID_PARAMS = "invalid_params"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
INTERNAL_ERROR = "internal_error"
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
DAILY_QUOTA = 1000  # Research API requests per day per project, reset at 00:00 UTC.

# Statuses the client records for requests that never got a usable API answer.
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
MALFORMED_RESPONSE = "malformed_response"
