"""``python -m segstudio`` is the ``segstudio`` command (also for ``torchrun -m segstudio``)."""

import sys

from segstudio.cli import main

sys.exit(main())
