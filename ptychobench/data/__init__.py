"""Samples and the file formats they come in."""

from ptychobench.data.sample import Sample

__all__ = ["Sample"]
