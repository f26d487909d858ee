"""BGP signal: MRT archives and RIS Live to per-entity visible-/24 series (issue 3)."""
