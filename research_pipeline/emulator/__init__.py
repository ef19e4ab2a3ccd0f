"""An offline TikTok Research API for demos, tests and benchmarks."""

from research_pipeline.emulator.config import EmulatorConfig
from research_pipeline.emulator.population import Population
from research_pipeline.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "Population"]
