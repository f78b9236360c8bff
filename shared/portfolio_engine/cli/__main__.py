"""``python -m portfolio_engine.cli``: the ``spe`` command without its console script."""

from portfolio_engine.cli import main

main()
