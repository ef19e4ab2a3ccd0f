"""The statuses of a member-day (tiktok.panel_days), one closed list: why a day of a member's
series has a value or not. A researcher treats the gaps by their cause: by design (ignorable),
by the panel's size (the quota), by the account (informative), by the infrastructure.

The warehouse derives them (warehouse.panel_days); the data dictionary, METHODS.md and the
chart's colours read them from here.
"""

# The closed list of statuses: status -> (why it is missing, what it means). The data
# dictionary, METHODS.md and the chart's legend read it from here.
OBSERVED = "observed"
STATUSES: dict[str, tuple[str, str]] = {
    OBSERVED: ("observed", "asked that day; the answer's values are stored"),
    "not_due": ("design", "not asked: the cohort's cadence did not call for it that day"),
    "deferred": (
        "quota",
        "due, not asked: the day's quota (or the lab's budget) ran short; plan_rank and "
        "day_budget say where it stood",
    ),
    "private": ("account", "asked; the API said the account is private"),
    "not_found": ("account", "asked; the API said the account does not exist"),
    "refused": ("account", "asked; the API declined to return this user's information"),
    "banned": ("account", "asked; the API said the account is banned"),
    "forgotten": (
        "account",
        "an account no longer available, forgotten under TikTok's terms: no values, the "
        "status alone stays",
    ),
    "server_error": ("infrastructure", "asked; the API failed for this request (5xx, no answer)"),
    "other_error": ("infrastructure", "asked; an error of no known kind"),
    "outage": ("infrastructure", "due, not asked: the API was down (the run stopped asking)"),
    "interrupted": (
        "infrastructure",
        "due, not asked: the run was stopped (Ctrl-C, killed, its deadline) before it",
    ),
    "no_access": ("infrastructure", "due, not asked: the credentials were refused"),
    "not_run": ("infrastructure", "due on a day the pipeline did not run at all"),
    "not_recorded": (
        "infrastructure",
        "a day of a release that did not record its plans: the reason was not kept",
    ),
}
GROUPS = ("observed", "design", "quota", "account", "infrastructure")
