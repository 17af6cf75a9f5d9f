"""`python -m control_plane` is the `scoregate` command."""

from control_plane.cli.main import main

raise SystemExit(main())
