"""``python -m minidl.exercises ex ...`` (the same as the ``minidl`` console script)."""
import sys

from .cli import main

sys.exit(main())
