"""An offline TikTok Research API for demos, tests and benchmarks."""

from research_pipeline.emulator.population import Population
from research_pipeline.emulator.server import EmulatorConfig, EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "Population"]
