"""``python -m analyzer.demo`` = ``analyzer demo``."""

from analyzer.demo.cli import demo

if __name__ == "__main__":
    demo(prog_name="analyzer demo")
