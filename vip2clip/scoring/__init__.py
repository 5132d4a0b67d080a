"""Distributed batch scoring on Ray Data: object storage -> ViP²-CLIP -> committed Parquet.

>>> from vip2clip.scoring import ScoringConfig, run_scoring
"""

from vip2clip.scoring.config import ScoringConfig
from vip2clip.scoring.pipeline import ScoringSummary, run_scoring

__all__ = ["ScoringConfig", "ScoringSummary", "run_scoring"]
