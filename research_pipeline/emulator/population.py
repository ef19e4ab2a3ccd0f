"""A deterministic synthetic population of TikTok accounts whose counts move from day to day.

Every valid username is an account: its profile comes from a hash of (seed, username), and its
counts on a given day from that profile plus day-seeded noise, so the same seed and date give the
same answer in every process, and successive dates differ the way real accounts do (growth,
churn, new videos).
"""

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import date

EPOCH = date(2024, 1, 1)

_FIRST = [
    "Ana",
    "Léa",
    "Jürgen",
    "Søren",
    "Zoë",
    "Mateo",
    "Aiyana",
    "Chloé",
    "Björn",
    "Kenji",
    "Olúwadámilọ́lá",
    "Nguyễn",
    "Айгуль",
    "Δημήτρης",
    "محمد",
    "אורי",
    "प्रिया",
    "王芳",
    "さくら",
    "민준",
    "ฟ้า",
]
_LAST = [
    "Silva",
    "Müller",
    "Nowak",
    "Øvergaard",
    "García",
    "Kowalczyk",
    "Okafor",
    "Иванова",
    "Παπαδόπουλος",
    "李",
    "佐藤",
    "김",
    "Türk",
    "Đặng",
]
_EMOJI = ["✨", "🎶", "🐾", "🌍", "📚", "🍜", "⚽", "🎨", "💃", "🔬", ""]
_BIO = [
    "daily dance clips",
    "science in 60 seconds",
    "street food diaries",
    "cat content only",
    "study with me",
    "football skills",
    "tiny kitchen, big recipes",
    "art process videos",
    "travel on a budget",
    "vida de estudiante",
    "日常vlog",
    "ежедневные влоги",
    "",
]


@dataclass(frozen=True)
class Account:
    username: str
    kind: str  # "active", "private", "banned" or "unknown"
    display_name: str
    bio_description: str
    is_verified: bool
    base_followers: float
    follower_growth: float  # per day, relative
    following: int
    base_videos: int
    videos_per_day: float
    likes_per_video: float


def _rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


@dataclass(frozen=True)
class Population:
    """Every account of a seed and shares of kinds: a value, so equal populations compare equal
    (and may key a cache)."""

    seed: int = 0
    private_share: float = 0.03
    banned_share: float = 0.01
    unknown_share: float = 0.03

    def account(self, username: str) -> Account:
        rng = _rng(self.seed, "account", username)
        roll = rng.random()
        if roll < self.unknown_share:
            kind = "unknown"
        elif roll < self.unknown_share + self.private_share:
            kind = "private"
        elif roll < self.unknown_share + self.private_share + self.banned_share:
            kind = "banned"
        else:
            kind = "active"
        followers = min(math.exp(rng.gauss(7.0, 2.6)), 2.5e8)  # heavy-tailed, median ~1,100
        return Account(
            username=username,
            kind=kind,
            display_name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {rng.choice(_EMOJI)}".strip(),
            bio_description=rng.choice(_BIO),
            is_verified=followers > 1e6 and rng.random() < 0.6,
            base_followers=followers,
            follower_growth=rng.gauss(0.0006, 0.0012),
            following=int(math.exp(rng.gauss(5.0, 1.2))),
            base_videos=int(math.exp(rng.gauss(3.5, 1.4))),
            videos_per_day=max(0.0, rng.gauss(0.3, 0.4)),
            likes_per_video=followers * rng.uniform(0.02, 1.5),
        )

    def user_info(self, account: Account, day: date) -> dict:
        """All documented fields of an active account on `day`."""
        t = (day - EPOCH).days
        noise = _rng(self.seed, "day", account.username, day.isoformat())
        followers = account.base_followers * math.exp(account.follower_growth * t)
        followers = min(followers * (1 + noise.gauss(0, 0.002)), 3e8)
        videos = account.base_videos + int(max(0, t) * account.videos_per_day)
        # Videos can be deleted: once in a while a day shows one fewer.
        if videos > 0 and noise.random() < 0.05:
            videos -= 1
        return {
            "display_name": account.display_name,
            "bio_description": account.bio_description,
            "avatar_url": f"https://p16-sign.tiktokcdn.example/avatar/{account.username}.jpeg",
            "bio_url": f"https://linktr.example/{account.username}" if account.is_verified else "",
            "is_verified": account.is_verified,
            "follower_count": max(0, round(followers)),
            "following_count": max(0, account.following + int(noise.gauss(0, 2))),
            "likes_count": max(0, round(account.likes_per_video * videos)),
            "video_count": videos,
        }
