"""`python -m bench [--json] [--quick] [--only PART]`: the benchmarks, as tables or one JSON object."""

from __future__ import annotations

import argparse
import json

from threadline.bench.suite import PARTS


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print tables (progress on stderr) or the JSON object alone."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="print only the result as one JSON object")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--only", choices=["all", *PARTS], default="all")
    args = parser.parse_args(argv)

    from rich.console import Console

    from threadline.bench.suite import render_all, run_all

    err = Console(stderr=True)
    result = run_all(args.quick, only=args.only, log=None if args.json else lambda line: err.print(f"[dim]{line}[/]"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for table in render_all(result):
            Console().print(table)


if __name__ == "__main__":
    main()
