"""Bring your own taste: import a Spotify "Download your data" export into a canonical profile."""
