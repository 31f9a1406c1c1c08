"""Command line: one module per command group, each parsing into configs and calling one library function.

The parser itself imports no torch: `summary`, `cost`, `tables` and `memory` run on the analytic model
alone, and the other commands load torch only when they run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from mobilenet.cli import analysis, bench, deployment, experiments, training, weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilenet", description="MobileNet V1/V2 as the papers define them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (analysis, training, deployment, bench, experiments, weights):
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    code = 0
    try:
        output = args.run(args)
        if isinstance(output, tuple):  # (text, exit code): some inputs failed, the rest were done
            output, code = output
    except (ValueError, FileExistsError) as err:
        # Bad input is the user's to fix: one line naming the value, exit 2 like argparse, no traceback.
        print(f"mobilenet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (OSError, FloatingPointError) as err:
        # A file the system refused (unwritable or impossible output path, full disk), or a training run whose
        # loss diverged (it names the step and what to change): one line, no traceback.
        print(f"mobilenet {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mobilenet {args.command}: interrupted", file=sys.stderr)
        return 130
    if output:
        try:
            print(output)
            sys.stdout.flush()
        except BrokenPipeError:  # `mobilenet ... | head`: the reader left; say nothing more
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit flush from failing again
    return code


if __name__ == "__main__":
    sys.exit(main())
