"""``python -m evaluator.cli`` (also under ``accelerate launch -m evaluator.cli``)."""

import sys

from evaluator.cli import main

sys.exit(main())
