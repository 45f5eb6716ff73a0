"""Click proposals for active learning: where to click next.

Use :func:`propose_clicks` with a name from :func:`list_proposal_strategies`
(``random``, ``entropy``, ``margin``, ``disagreement``). A new strategy registers itself
with :func:`register_proposal_strategy` when its module is imported; import that module here.
"""

from pointseg.proposals.strategies import (
    ImageInputs,
    Proposal,
    ProposalStrategy,
    SegmentScores,
    get_proposal_strategy,
    list_proposal_strategies,
    propose_clicks,
    register_proposal_strategy,
)

__all__ = [
    "ImageInputs",
    "Proposal",
    "ProposalStrategy",
    "SegmentScores",
    "get_proposal_strategy",
    "list_proposal_strategies",
    "propose_clicks",
    "register_proposal_strategy",
]
