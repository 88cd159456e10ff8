#!/usr/bin/env python3
"""Replay the KuaiRand logs through feed-server's HTTP API; see eval/README.md and --help."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from feedeval.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
