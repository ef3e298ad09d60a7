"""The model services, each its own process: ``diagnosis``, ``ptycho_agent``,
``retriever`` and ``reconstructor``, with what they share in ``common``. A service never
imports another one; they speak over HTTP with the models of :mod:`ptychowire`
(docs/architecture.md, tests/unit/test_import_rules.py)."""
