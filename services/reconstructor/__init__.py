"""The reconstructor: Pty-chi reconstructions of uploaded experiments, as jobs."""
