"""``python -m analyzer ...`` = ``analyzer ...``."""

from analyzer.cli import main

main()
