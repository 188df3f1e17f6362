"""`python -m greenmatrix_lab up|env|status|down`, for use without the main CLI."""

from greenmatrix_lab.cli import command

command(prog_name="greenmatrix lab")
