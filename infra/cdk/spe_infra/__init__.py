"""CDK v2 infrastructure of the Stochastic Portfolio Engine (refers to handlers by path, never imports them)."""
