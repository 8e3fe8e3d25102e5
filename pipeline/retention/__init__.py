"""The retained access-log store: day partitions of sorted Parquet with manifests, verify, purge, holds."""

from .holds import Hold, held_days, hold_add, hold_list, hold_release
from .ingest import IngestReport, ingest, ingested
from .layout import Partition, partitions_between, published_days
from .purge import LEGAL_FLOOR_DAYS, PurgeReport, check_retention, purge
from .verify import Problem, VerifyReport, verify

__all__ = [
    "Hold", "IngestReport", "LEGAL_FLOOR_DAYS", "Partition", "Problem", "PurgeReport", "VerifyReport",
    "check_retention", "held_days", "hold_add", "hold_list", "hold_release", "ingest", "ingested",
    "partitions_between", "published_days", "purge", "verify",
]
