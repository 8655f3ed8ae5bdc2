from ichinfer.cli import run

run()
