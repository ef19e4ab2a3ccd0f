"""Every setting is declared once (tiktok.settings.declared: variable, default, kind, bounds,
meaning); these tests hold each surface against the declaration: the environment's reading, the
range checks, the Dagster resources' fields (the launchpad), the README table, deploy/env.example.
"""

import re
from pathlib import Path

import pytest

from research_pipeline.defs.resources import (
    AlertsResource,
    ResearchApiResource,
    ResearchTerms,
    build_resources,
)
from research_pipeline.errors import ConfigurationError
from research_pipeline.notify import AlertChannels, alert_channels_from_env
from research_pipeline.settings import PipelineSettings
from research_pipeline.tiktok import ClientSettings
from research_pipeline.tiktok.settings import declarations

REPO = Path(__file__).resolve().parents[1]
DECLARING = (ClientSettings, PipelineSettings, AlertChannels)
CREDENTIALS = {"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"}


def _declared():
    for settings_class in DECLARING:
        yield from declarations(settings_class).items()


def _shown(default) -> str:
    """A default as the README writes it."""
    if isinstance(default, bool):
        return "1" if default else "0"
    if isinstance(default, float | int):
        return f"{default:g}"
    return str(default)


def _readme_rows() -> dict[str, str]:
    """Variable -> the default cell of its row in the README's configuration table."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration (environment)")[1].split("\n## ")[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 3:
            for variable in re.findall(r"`([A-Z0-9_*]+)`", cells[0]):
                rows[variable] = cells[1]
    return rows


def test_every_declared_setting_is_in_the_readme_table_with_its_default():
    rows = _readme_rows()
    missing, wrong = [], []
    for _, setting in _declared():
        variable, default = setting.metadata["variable"], setting.default
        cell = rows.get(variable) or rows.get(re.sub(r"_[A-Z]+$", "_*", variable))
        if cell is None:
            missing.append(variable)
        elif default not in (None, "") and setting.metadata["kind"] != "list":
            if _shown(default) not in cell:
                wrong.append((variable, _shown(default), cell))
    assert missing == [] and wrong == []


def test_an_unset_environment_gives_every_declared_default():
    client = ClientSettings.from_env(CREDENTIALS)
    pipeline = PipelineSettings.from_env({})
    channels = alert_channels_from_env({})
    for settings in (client, pipeline, channels):
        for name, setting in declarations(type(settings)).items():
            if setting.metadata["kind"] != "path" and name not in ("client_key", "client_secret"):
                assert getattr(settings, name) == setting.default, name


def test_each_setting_is_read_from_its_variable_and_checked_against_its_bounds():
    """One value per kind read through its variable; one past each bound refused in one line
    naming the variable."""
    env = {
        **CREDENTIALS,
        "TIKTOK_CONCURRENCY": "7",
        "TIKTOK_DAILY_QUOTA": "off",
        "TIKTOK_FIELDS": "display_name, follower_count",
        "TIKTOK_ALLOW_ANY_HOST": "yes",
    }
    client = ClientSettings.from_env(env)
    assert (client.concurrency, client.daily_quota, client.fields, client.allow_any_host) == (
        7,
        None,
        ("display_name", "follower_count"),
        True,
    )
    pipeline = PipelineSettings.from_env({"RESEARCH_PIPELINE_DAYS_AHEAD": "7"})
    assert pipeline.days_ahead == 7
    checked = 0
    for settings_class, setting in (
        (cls, f) for cls in DECLARING for f in declarations(cls).values()
    ):
        if setting.metadata["bounds"] is None:
            continue
        low, high, _ = setting.metadata["bounds"]
        variable = setting.metadata["variable"]
        below = low - 1 if low >= 1 and setting.metadata["kind"] != "limit" else None  # 0: off
        for value in (below, high + 1):
            if value is None:
                continue
            read = {
                ClientSettings: lambda e: ClientSettings.from_env({**CREDENTIALS, **e}),
                PipelineSettings: PipelineSettings.from_env,
                AlertChannels: alert_channels_from_env,
            }[settings_class]
            with pytest.raises(ConfigurationError, match=variable) as refused:
                read({variable: str(value)})
            assert "\n" not in str(refused.value)
            checked += 1
    assert checked >= 2 * 12


def test_the_launchpad_shows_each_declared_setting_with_its_default_and_variable():
    """The resources' fields (what the UI's launchpad shows and a run may override) are made
    from the declarations: same default, the variable named in the description."""
    seen = 0
    for resource in (ResearchApiResource, ResearchTerms, AlertsResource):
        for name, info in resource.model_fields.items():
            found = [
                f
                for cls in DECLARING
                for n, f in declarations(cls).items()
                if n == name and f.metadata["variable"] in (info.description or "")
            ]
            if name in ("client_key", "client_secret"):
                continue
            assert found, f"{resource.__name__}.{name} is not a declared setting"
            default = found[0].default
            expected = list(default) if isinstance(default, tuple) else default
            assert info.default == expected, name
            seen += 1
    assert seen >= 30


def test_the_code_location_reads_the_environment_into_the_resources_once():
    env = {**CREDENTIALS, "TIKTOK_CONCURRENCY": "9", "RESEARCH_PIPELINE_SMTP_PORT": "2525"}
    resources = build_resources(env)
    assert resources["research_api"].concurrency == 9
    assert resources["alerts"].smtp_port == 2525
    assert resources["research_api"].settings().concurrency == 9


def test_env_example_names_only_declared_settings_with_their_defaults():
    declared = {f.metadata["variable"]: f for _, f in _declared()}
    lines = (REPO / "deploy" / "env.example").read_text(encoding="utf-8").splitlines()
    for line in lines:
        if not line or line.startswith("#"):
            continue
        variable, _, value = line.partition("=")
        if variable.startswith("DAGSTER_"):
            continue  # Dagster's own (dagster.yaml)
        assert variable in declared, variable
        default = declared[variable].default
        if value and declared[variable].metadata["kind"] not in ("path", "text", "secret"):
            assert value == _shown(default), variable
