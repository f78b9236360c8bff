"""Stochastic Portfolio Engine: the library every function uses."""
