"""Shared pieces of exo_gait: the interface contract, parameters, QoS, diagnostics, paths."""
