"""Payam Iran: the national gateway between government agencies and citizens."""

__version__ = "0.1.0"
