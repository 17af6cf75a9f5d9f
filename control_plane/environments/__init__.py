"""Per-deployment Python environments: what a deployment asks for (a conda file, a registered
environment, an MLflow model's own files), which installed interpreter serves it, and the
environment itself, built once per key with uv under the state folder and shared.

Modules: `conda` and `requirements` (sources, pure), `interpreters`, `key`, `builder` (with
`locks` and `progress`), `rows` and `service` (registered environments), `gc`.
See docs/environments.md.
"""
