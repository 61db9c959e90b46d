"""Data sets: one schema, every annotation format, masks, splits, tiles and statistics."""

from masksmith.data.load import load_dataset
from masksmith.data.schema import ClassInfo, Dataset, Problem, Region, Sample

__all__ = ["ClassInfo", "Dataset", "Problem", "Region", "Sample", "load_dataset"]
