"""`python -m control_plane` is the `scoregate` command."""

from control_plane.entry import main

raise SystemExit(main())
