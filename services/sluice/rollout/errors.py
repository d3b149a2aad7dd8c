"""The rollout controller's errors: children of the core root, by family."""

from __future__ import annotations

from sluice.core.errors import Conflict, InvalidInput, NotFound


class InvalidRollout(InvalidInput):
    """A ModelRollout (or an action on one) that cannot be accepted; nothing changed."""

    code = "invalid_rollout"


class RolloutNotFound(NotFound):
    code = "rollout_not_found"


class DeclaredElsewhere(Conflict):
    """In a cluster, rollouts are Kubernetes resources: change them with kubectl."""

    code = "declared_in_kubernetes"
