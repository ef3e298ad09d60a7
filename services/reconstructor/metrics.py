"""The reconstructor's Prometheus metrics: the shared HTTP ones plus jobs by state, job
time and queue depth."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ptychowire.reconstructor import JOB_STATES
from services.common.metrics import ServiceMetrics

JOB_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200)


class ReconstructorMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("reconstructor")
        self.jobs = Counter(
            "ptycho_reconstructor_jobs",
            "Jobs entering each state (queued counts submissions and re-queues).",
            ("state",),
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "ptycho_reconstructor_job_seconds",
            "Time a job ran, from start to its final state.",
            ("state",),
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ptycho_reconstructor_queue_depth",
            "Jobs waiting for a worker.",
            registry=self.registry,
        )
        self.running = Gauge(
            "ptycho_reconstructor_jobs_running",
            "Jobs being reconstructed now.",
            registry=self.registry,
        )
        for state in JOB_STATES:
            self.jobs.labels(state=state)
        for state in ("done", "failed", "cancelled"):
            self.job_seconds.labels(state=state)
