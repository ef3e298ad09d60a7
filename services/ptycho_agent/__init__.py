"""ptycho_agent: reconstruction-parameter recommendation over the engine
(``POST /v1/recommend``)."""
