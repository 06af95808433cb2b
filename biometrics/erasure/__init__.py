"""Erasure of everything held about a child, in every system, verified (docs/erasure.md).

The database holds the state of every erasure: one ErasureRequest per child at a time, one
ErasureStep per system. Tasks carry step ids only; a task works every waiting step of its kind
(the portal's stores, or one holder), up to ERASURE_BATCH of them, claimed with SELECT ... FOR
UPDATE SKIP LOCKED. Every action is idempotent and verified, and each step's attempts, result
and error are recorded on its own row. The child's data key is destroyed last, once every other
step is verified; then the request is sealed with a signed receipt.

A worker killed mid-step, a restarted broker or a holder that is down only delay this: the
watchdog re-drives any step that has not moved for ERASURE_STUCK_SECONDS.

    plan.py      which systems, in which order
    opening.py   open one or many erasures; queue what they can do now
    runner.py    claim and run steps in batches; record failures; escalate
    actions.py   one action per kind of store, each verifying what it erased
    sealing.py   verified requests get a signed receipt and an audit event
    watchdog.py  re-drive what stopped moving
"""

from .opening import erasure_dispatch, erasure_open, erasure_open_many
from .plan import OPEN, STEP_TASK, StepFailed, erasure_steps_for
from .runner import erasure_step_run
from .sealing import erasure_seal_many
from .watchdog import erasure_watchdog

__all__ = [
    "OPEN",
    "STEP_TASK",
    "StepFailed",
    "erasure_dispatch",
    "erasure_open",
    "erasure_open_many",
    "erasure_seal_many",
    "erasure_step_run",
    "erasure_steps_for",
    "erasure_watchdog",
]
