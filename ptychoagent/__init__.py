"""PtychoAgent: the command line (``ptychoagent``), the engine manager, the local stack of
``make run``, and the typed beamline client (:mod:`ptychoagent.client`, which imports only
the wire contract)."""

__version__ = "0.1.0"
