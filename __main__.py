"""`python -m comfyui_grok_imagine ...` runs the command line."""

from .cli import main

raise SystemExit(main())
