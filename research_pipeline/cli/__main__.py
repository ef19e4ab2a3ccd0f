from research_pipeline.cli import run

run()
