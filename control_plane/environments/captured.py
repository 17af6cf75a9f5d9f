"""A deployment's inline conda file, copied into the state folder when the deployment is created
or updated, as Azure uploads it into an anonymous environment version at create: editing or
deleting the file afterwards changes nothing until the next `update -f`.

The copy is `<root>/<digest>/<file name>`, the digest over the name and the content: the same
file applied again (`serve FOLDER` at each start, SIGHUP) gets the same path, so the stored spec
does not change, and the file name stays visible in `show` and in error messages. The file is
parsed at capture, so a bad conda file is refused at create naming the user's file, not later
in a build. Written atomically (temp file, fsync, rename) before the row that names it commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from control_plane.environments.conda import parse_conda_text
from control_plane.environments.requirements import normalize
from control_plane.errors import ValidationError
from control_plane.home import write_atomically
from control_plane.specs.resources import DeploymentSpec


def capture(spec: DeploymentSpec, root: Path) -> DeploymentSpec:
    """`spec` with its inline `environment.conda_file` replaced by a stored copy (unchanged
    when it has none, names a registered environment, or was captured already)."""
    environment = spec.environment
    if not isinstance(environment, Mapping):
        return spec
    conda = environment.get("conda_file")
    if not isinstance(conda, str) or conda.startswith("azureml:") or _is_captured(conda, root):
        return spec
    path = Path(conda)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ValidationError("environment-conda-file", f"environment.conda_file: cannot read "
                              f"{conda}: {error.strerror}") from None
    text = content.decode("utf-8", errors="replace")
    normalize(parse_conda_text(text, conda).requirements, conda)  # refused now, with its name
    digest = hashlib.sha256(path.name.encode() + b"\0" + content).hexdigest()[:24]
    target = root / digest / path.name
    if not target.is_file():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(target, content)
    return spec.with_changes(environment={**environment, "conda_file": str(target)})


def _is_captured(conda: str, root: Path) -> bool:
    return Path(conda).parent.parent == root
