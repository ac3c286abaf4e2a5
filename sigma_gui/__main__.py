"""``python -m sigma_gui [RUN_DIR ...]``: the same as ``sigma gui``."""
import sys

from sigma_gui.app import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m sigma_gui"))
