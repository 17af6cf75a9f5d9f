"""Why a request reached a deployment: the `role` label of metrics and access-log lines.

`live`: picked by the endpoint's traffic weights; `direct`: named by the client with the
`azureml-model-deployment` header; `mirror`: a copy sent to the mirror deployment. The control
plane reads request counts by role (rollout windows), so it uses these names too.
"""

from __future__ import annotations

ROLE_LIVE = "live"
ROLE_DIRECT = "direct"
ROLE_MIRROR = "mirror"
ROLES = (ROLE_LIVE, ROLE_DIRECT, ROLE_MIRROR)
