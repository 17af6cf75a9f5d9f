"""`python -m control_plane` is the `scoregate` command."""

from .cli import main

raise SystemExit(main())
