"""PtychoAgent: the command line (and, later, the beamline client) around PtychoBench."""

__version__ = "0.1.0"
