"""Source generators and ingesters that emit source-level facts (see :mod:`.registry`)."""
