"""Fusing every bracket of a shoot, unattended: naming, resume, workers, Ray.

:func:`plan` turns the groups of :mod:`uhdfuse.shoot` into :class:`Job` s (one
output name each, from a template, never two alike: :mod:`~uhdfuse.batch.naming`)
and decides from the resume manifest (:mod:`~uhdfuse.batch.manifest`) which are
already done. :func:`run_batch` (:mod:`~uhdfuse.batch.run`) runs the rest on an
executor (:mod:`~uhdfuse.batch.executors`; each bracket is fused by a
:mod:`~uhdfuse.batch.worker`) and returns a :class:`BatchSummary` whose
:attr:`~BatchSummary.exit_code` is 0 when every bracket succeeded, 3 when some
failed, 1 when none did (130 interrupted, 143 terminated by SIGTERM).

One failing bracket never stops the batch: its error is recorded and the next
bracket goes on. Outputs are written atomically by :func:`uhdfuse.io.write_image`,
so an interrupted batch leaves finished outputs and nothing half-written, and a
rerun skips what is up to date.

Workers take their thread counts from the environment they start with
(:data:`uhdfuse.threads.THREAD_VARIABLES`, set to each worker's share of the
cores), so what they import before their initializer runs obeys it too.
"""

from uhdfuse.batch.executors import BracketExecutor, LocalExecutor, RayExecutor, make_executor
from uhdfuse.batch.jobs import Job, Outcome, Status
from uhdfuse.batch.manifest import MANIFEST_NAME, REPORT_NAME, Manifest, fingerprint, settings_hash
from uhdfuse.batch.naming import DEFAULT_TEMPLATE, TEMPLATE_FIELDS, check_template, output_names
from uhdfuse.batch.options import BatchOptions
from uhdfuse.batch.plan import Plan, exposure_anchor, fuses, plan
from uhdfuse.batch.run import EXIT_INTERRUPTED, EXIT_NONE, EXIT_OK, EXIT_SOME, BatchSummary, run_batch
from uhdfuse.batch.worker import Worker, run_job

__all__ = [
    "DEFAULT_TEMPLATE",
    "EXIT_INTERRUPTED",
    "EXIT_NONE",
    "EXIT_OK",
    "EXIT_SOME",
    "MANIFEST_NAME",
    "REPORT_NAME",
    "TEMPLATE_FIELDS",
    "BatchOptions",
    "BatchSummary",
    "BracketExecutor",
    "Job",
    "LocalExecutor",
    "Manifest",
    "Outcome",
    "Plan",
    "RayExecutor",
    "Status",
    "Worker",
    "check_template",
    "exposure_anchor",
    "fuses",
    "fingerprint",
    "make_executor",
    "output_names",
    "plan",
    "run_batch",
    "run_job",
    "settings_hash",
]
