"""Writes on workflows: definitions, dispatching, executing and recording runs, test runs.

Other apps and the API call these names (`from apps.workflows import services`); the modules
of this package hold them by concern:

- definitions: workflows (drafts, publishing, versions) and routing rules
- dispatch: queued runs for matched events (the runs outbox), redispatch, lost-run recovery
- runs: executing queued runs, resuming delayed ones, purging old ones
- recording: applying a run's changes and saving how it ended
- inputs: what a run reads (its version's graph, event, profile, RunContext)
- storage: the runs' and traces' rows in bulk (raw SQL on PostgreSQL)
- dry_run: test runs, rolled back
"""

from apps.workflows.services.definitions import (
    rule_create,
    rule_delete,
    rule_update,
    workflow_create,
    workflow_delete,
    workflow_publish,
    workflow_restore,
    workflow_unpublish,
    workflow_update_draft,
)
from apps.workflows.services.dispatch import (
    MAX_RUN_RECOVERIES,
    rules_dispatch,
    runs_recover_lost,
    runs_redispatch_queued,
)
from apps.workflows.services.dry_run import workflow_test_as, workflow_test_run
from apps.workflows.services.runs import run_resume, runs_execute, runs_purge, runs_resume_due

__all__ = [
    "MAX_RUN_RECOVERIES",
    "rule_create",
    "rule_delete",
    "rule_update",
    "rules_dispatch",
    "run_resume",
    "runs_execute",
    "runs_purge",
    "runs_recover_lost",
    "runs_redispatch_queued",
    "runs_resume_due",
    "workflow_create",
    "workflow_delete",
    "workflow_publish",
    "workflow_restore",
    "workflow_test_as",
    "workflow_test_run",
    "workflow_unpublish",
    "workflow_update_draft",
]
