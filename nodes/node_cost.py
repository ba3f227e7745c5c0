"""What a node declares about its price, for the cost badge the frontend draws on it.

The credits come from ``api.models`` (the one price list); a node only says what multiplies them:
``counted_by`` names the input whose value (an INT) or number of task ids (a STRING) counts the
paid tasks. The panel routes serve these to the frontend, which keeps no price list of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeCost:
    credits: int
    """Credits per counted unit (0: the node is free)."""
    per: str | None = None
    """What one unit is ("task", "task id"): the badge words it from ``grokImagine.badge.per``
    in the locale files (the value is the message's name there)."""
    counted_by: str | None = None
    """The input that counts the units; None for a flat price."""
