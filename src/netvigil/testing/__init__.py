"""Test and benchmark harnesses: network-namespace test beds, an MRT encoder, fact generators.

Not used by the observatory at run time (checked by the import contracts in ``pyproject.toml``):
only ``tests/`` and ``benchmarks/`` import this package.
"""
