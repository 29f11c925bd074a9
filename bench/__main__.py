"""`python -m bench [--json] [--quick]`: the turn benchmark, as a table or one JSON object."""

from __future__ import annotations

import argparse
import json
import os


def main(argv: list[str] | None = None) -> None:
    """Run the turn benchmark and print the table (progress on stderr) or the JSON object alone."""
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    parser = argparse.ArgumentParser(prog="python -m bench", description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="print only the result as one JSON object")
    parser.add_argument("--quick", action="store_true", help="few turns: a smoke run, not a measurement")
    args = parser.parse_args(argv)

    from rich.console import Console

    from bench.turns import render, run

    err = Console(stderr=True)
    result = run(quick=args.quick, log=None if args.json else lambda line: err.print(f"[dim]{line}[/]"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render(result))


if __name__ == "__main__":
    main()
