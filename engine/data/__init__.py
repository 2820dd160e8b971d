"""Data: the Sample type, the TOFU loader and the built-in benchmark generator."""
from .loader import DataError, load_benchmark, load_file, write_file
from .sample import Benchmark, Sample, Span

__all__ = ["Benchmark", "DataError", "Sample", "Span", "load_benchmark", "load_file", "write_file"]
