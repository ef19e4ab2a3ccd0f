"""Pointing a public Research API client at the emulator: many hard-code TikTok's host, so a
`requests.Session` with a transport adapter sends those URLs to the emulator instead. For the
conformance tests and the side-by-side benchmarks; no request ever leaves the machine."""

import requests
from requests.adapters import HTTPAdapter

from research_pipeline.emulator.documented import API_HOST as DEFAULT_BASE_URL


class _ToEmulator(HTTPAdapter):
    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def send(self, request, **kwargs):
        request.url = request.url.replace(DEFAULT_BASE_URL, self.base_url, 1)
        return super().send(request, **kwargs)


def session_to_emulator(base_url: str) -> requests.Session:
    """A session whose requests to TikTok's API host go to the emulator at `base_url`."""
    session = requests.Session()
    session.mount(DEFAULT_BASE_URL, _ToEmulator(base_url))
    return session
