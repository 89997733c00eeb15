#!/usr/bin/env python
"""Django's command-line utility for the example site (``python example_site/manage.py check``)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
