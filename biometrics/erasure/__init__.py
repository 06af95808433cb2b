"""Erasure of everything held about a child, in every system, verified (docs/erasure.md).

The database holds the state of every erasure: one ErasureRequest per child at a time, one
ErasureStep per system. Tasks carry step ids only; a task works every due step of its kind
(the portal's stores, or one holder), up to ERASURE_BATCH of them, claimed with SELECT ... FOR
UPDATE SKIP LOCKED and held on a lease. Every action is idempotent and verified, and each
step's attempts, next try, result, error and proof are recorded on its own row. The child's
data key is destroyed last, once every other step is verified; then the request is sealed with
a signed receipt.

A worker killed mid-step, a restarted broker or a holder that is down only delay this: a step
backs off on its own clock, the watchdog takes back expired leases and re-drives due steps no
worker picked up, and a step failing for too long is escalated to the DPO, once.

    plan.py          which systems, in which order
    stores.py        stores registered by the apps above (the portal's downloads)
    opening.py       open one or many erasures; queue what they can do now
    runner.py        claim and run steps in batches; record failures and their next try
    lease.py         a worker's lease on its steps, renewed while it works
    attention.py     backoff, errors in words, escalation to the DPO
    actions.py       one action per kind of store, each verifying (and proving) what it erased
    confirmation.py  a DPO's confirmation for a holder no one can ask any more
    sealing.py       verified requests get a signed receipt and an audit event
    watchdog.py      re-drive what stopped moving
"""

from .attention import describe, retry_delay
from .confirmation import CannotConfirm, confirmable_steps, erasure_step_confirm
from .opening import erasure_dispatch, erasure_open, erasure_open_many
from .plan import COPY_TASK, OPEN, STEP_TASK, StepFailed, erasure_steps_for
from .runner import erasure_step_run
from .sealing import erasure_seal_many
from .stores import ErasureStore, erasure_store_register
from .watchdog import erasure_watchdog

__all__ = [
    "COPY_TASK",
    "OPEN",
    "STEP_TASK",
    "CannotConfirm",
    "ErasureStore",
    "StepFailed",
    "confirmable_steps",
    "describe",
    "erasure_dispatch",
    "erasure_open",
    "erasure_open_many",
    "erasure_seal_many",
    "erasure_step_confirm",
    "erasure_step_run",
    "erasure_store_register",
    "erasure_steps_for",
    "erasure_watchdog",
    "retry_delay",
]
