import sys

from research_pipeline.cli import main

sys.exit(main())
