"""Fixtures shared by the control-plane tests."""

from tests.control_plane.admin.test_admin_api import admin  # noqa: F401  (the admin server fixture)
