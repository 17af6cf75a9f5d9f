"""The control plane's public names are pinned: adding or removing one is a decision."""

from __future__ import annotations

import control_plane

EXPECTED = {
    "ConfigError", "Conflict", "Migration", "NotFound", "PreconditionFailed", "SchemaTooNew",
    "ScoregateError", "Store", "StoreExtension", "ValidationError", "main",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(control_plane.__all__) == EXPECTED
    assert len(control_plane.__all__) == len(EXPECTED)  # no name twice


def test_every_public_name_resolves() -> None:
    for name in control_plane.__all__:
        member = getattr(control_plane, name)
        assert member is not None, name
        assert getattr(member, "__module__", "").startswith("control_plane"), name


def test_errors_are_one_hierarchy() -> None:
    errors = [control_plane.ConfigError, control_plane.Conflict, control_plane.NotFound,
              control_plane.PreconditionFailed, control_plane.SchemaTooNew,
              control_plane.ValidationError]
    assert all(issubclass(error, control_plane.ScoregateError) for error in errors)


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(control_plane, "rollouts_engine")
