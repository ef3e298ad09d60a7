"""The PtychoBench benchmark against the live services: a run described in YAML
(:mod:`gateway.bench.config`), sent through the gateway and kept item by item
(:mod:`gateway.bench.runner`, :mod:`gateway.bench.store`), reported in the paper's form
(:mod:`gateway.bench.report`)."""
