"""Stub: `jambo loyalty …` commands."""

import typer

loyalty_app = typer.Typer(help="Loyalty register import and export.", no_args_is_help=True)
