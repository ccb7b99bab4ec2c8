"""drugslm core library: plain, typed Python with no ZenML import.

ZenML steps under ``steps/`` are thin wrappers around the functions here.
"""

__version__ = "0.1.0"
