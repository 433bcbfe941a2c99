"""The local Spotify world: a deterministic population of users with a hidden taste
(``generator``), the real-name catalog behind it (``catalog``), the ground truth for
evaluation (``groundtruth``) and a Spotify-compatible Web API serving it (``server``).

Nothing is imported here, so importing the package stays cheap.
"""
