"""research-pipeline: repeatable TikTok Research API snapshots, orchestrated by Dagster."""
