"""Drive the embedded stack: ``python -m airflow_provider_sophia.local up|down|env|status|demo``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from airflow_provider_sophia.local.processes import ServiceError
from airflow_provider_sophia.local.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    """Run one stack command; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_sophia.local", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".sophia"), help="where the stack keeps state")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the warehouse and Gong simulator, create the sample source")
    up.add_argument("--regenerate", action="store_true", help="recreate the sample source database")
    commands.add_parser("down", help="stop every service of the stack")
    commands.add_parser("status", help="show which services run where")
    commands.add_parser("env", help="print shell exports pointing Airflow at the stack")
    demo = commands.add_parser("demo", help="start the stack and run the example DAGs")
    demo.add_argument("--keep-running", action="store_true", help="leave the services up afterwards")
    args = parser.parse_args(argv)

    stack = LocalStack(state_dir=args.state_dir)
    try:
        if args.command == "up":
            stack.up(regenerate=args.regenerate)
            print(f"ready: `source {stack.state_dir / 'env.sh'}` then use the airflow CLI")
        elif args.command == "down":
            stopped = stack.down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.command == "status":
            for service in stack.services():
                state = service.status()
                where = f"running on port {state.port} (pid {state.pid})" if state else "stopped"
                print(f"{service.name:<10} {where}")
        elif args.command == "env":
            for key, value in sorted(stack.env().items()):
                print(f"export {key}={shlex.quote(value)}")
        else:
            from airflow_provider_sophia.local.demo import run_demo

            return run_demo(stack, keep_running=args.keep_running)
    except (ServiceError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
