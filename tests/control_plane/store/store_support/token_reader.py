"""Prints the admin token of HOME: several of these start at once in the admin-token test."""

from __future__ import annotations

import sys
from pathlib import Path

from control_plane.admin.token import load_admin_token

if __name__ == "__main__":
    print(f"token {load_admin_token(Path(sys.argv[1]), environ={})}", flush=True)
