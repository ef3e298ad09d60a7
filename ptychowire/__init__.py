"""The wire contract: every request and response model that crosses a process boundary
(the gateway's public API, the diagnosis, ptycho_agent, retriever and reconstructor
services' APIs), the problem+json error body, and the shared field types: one
:class:`Strategy`, one bounded :data:`K`, the label and letter vocabularies.

Pydantic and the standard library only: no web framework, no HTTP client, no numpy, and
no other package of this project. Every process imports it; it imports none of them
(``tests/unit/test_import_rules.py``).

=====================  ==================================================
``ptychowire.base``    RequestModel, Seed, K, Strategy, Base64, CleanText
``ptychowire.labels``  Task, the 12 artifact labels, the letters A–X
``ptychowire.problem`` ProblemDetail (``application/problem+json``)
``ptychowire.diagnosis`` / ``.agent`` / ``.retriever`` / ``.reconstructor``
                       each service's requests and responses
``ptychowire.gateway`` / ``.refine``
                       what a beamline sends the gateway and reads back
=====================  ==================================================
"""

from ptychowire.base import (
    ADAPTER_PATTERN,
    BASE64_PATTERN,
    K_MAX,
    SEED_MAX,
    Base64,
    CleanText,
    K,
    RequestModel,
    Seed,
    Strategy,
    k_limit_message,
    refuse_nul,
)
from ptychowire.labels import (
    ARTIFACT_LABELS,
    NO_ARTIFACTS,
    NO_CHANGES,
    OPTION_LETTERS,
    ArtifactLabel,
    ArtifactList,
    OptionLetter,
    OptionList,
    Task,
)
from ptychowire.problem import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, ProblemDetail

__all__ = [
    "ADAPTER_PATTERN",
    "ARTIFACT_LABELS",
    "BASE64_PATTERN",
    "K_MAX",
    "NO_ARTIFACTS",
    "NO_CHANGES",
    "OPTION_LETTERS",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "SEED_MAX",
    "ArtifactLabel",
    "ArtifactList",
    "Base64",
    "CleanText",
    "K",
    "OptionLetter",
    "OptionList",
    "ProblemDetail",
    "RequestModel",
    "Seed",
    "Strategy",
    "Task",
    "k_limit_message",
    "refuse_nul",
]
