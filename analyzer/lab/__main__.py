"""`python -m analyzer.lab` = `iscsi-analyzer lab`."""

from analyzer.lab.cli import lab

if __name__ == "__main__":
    lab(prog_name="python -m analyzer.lab")
