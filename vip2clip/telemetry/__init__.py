"""Operational metrics: live Ray metrics and per-job summaries pushed to a Pushgateway.

``live`` records from inside Ray workers (scraped by Prometheus through Ray's
metrics agents); ``push`` sends one summary per run to a Pushgateway.
Every metric is documented in ``docs/metrics.md``.
"""

from vip2clip.telemetry.live import PipelineMetrics, TrainingMetrics
from vip2clip.telemetry.push import JobSummary, PushConfig, push_job_summary

__all__ = ["JobSummary", "PipelineMetrics", "PushConfig", "TrainingMetrics", "push_job_summary"]
