"""Soundmates: find the people whose music taste is closest to yours."""

__version__ = "0.1.0"
