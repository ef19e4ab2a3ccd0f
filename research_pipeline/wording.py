"""Numbers in sentences a researcher reads (and may paste into a paper): "1 day", "2 days"."""


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`count` and the noun that agrees with it, thousands separated."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"
