"""Offline profile sources (floor 2) that yield canonical :class:`~soundmates.profiles.Profile` objects.

``hetrec``: the HetRec 2011 Last.fm 2k dataset, for evaluation on real people.
"""
