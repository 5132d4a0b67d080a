"""Evaluation: the paper's metrics (exact and streaming), per-class reports and thresholds.

Light modules only here (numpy/scipy); :mod:`vip2clip.eval.evaluate` (which loads the model)
and :mod:`vip2clip.eval.thresholds` are imported from their own modules.
"""

from vip2clip.eval.aupro import AuproMethod, aupro
from vip2clip.eval.curves import F1Max
from vip2clip.eval.histogram import PixelAccumulator
from vip2clip.eval.metrics import auroc, average_precision, f1_max
from vip2clip.eval.report import ClassMetrics, EvaluationAccumulator, EvaluationReport, Thresholds
from vip2clip.eval.table import render_markdown, report_to_json, write_report

__all__ = [
    "AuproMethod",
    "ClassMetrics",
    "EvaluationAccumulator",
    "EvaluationReport",
    "F1Max",
    "PixelAccumulator",
    "Thresholds",
    "aupro",
    "auroc",
    "average_precision",
    "f1_max",
    "render_markdown",
    "report_to_json",
    "write_report",
]
