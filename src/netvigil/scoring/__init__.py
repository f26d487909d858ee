"""Scoring (a surface): the detection benchmark over the simulator's labelled scenarios.

``matching`` holds the event-level matching and metrics (pure), ``bench`` runs scenarios through
the one path (facts → Pipeline → store → run_detection → events) and scores them.
"""
