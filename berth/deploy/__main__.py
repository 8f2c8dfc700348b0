"""`make deploy` and `make destroy` (docs/deploy.md).

    python -m berth.deploy up --stage prod --domain registry.example.com --hosted-zone-id Z0123
    python -m berth.deploy down --stage prod
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from berth.deploy.stage import StackChoices, down, up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m berth.deploy", description="Deploy or remove a Berth stage.")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    commands = parser.add_subparsers(dest="command", required=True)
    deploy = commands.add_parser("up", help="create or update the stage")
    destroy = commands.add_parser("down", help="remove the stage's stacks (the bucket and table are kept)")
    for command in (deploy, destroy):
        command.add_argument("--stage", default="prod")
        command.add_argument("--region", help="default: the AWS configuration's")
    deploy.add_argument("--domain", help="host name clients use; remembered for later runs")
    deploy.add_argument("--hosted-zone-id", help="its Route 53 zone: certificate and DNS record made for you")
    deploy.add_argument("--certificate-arn", help="an existing ACM certificate for the domain, in the region")
    deploy.add_argument("--alarm-topic-arn", help="an SNS topic told of failed verifications; remembered "
                                                  "(pass '' to stop the alarm)")
    destroy.add_argument("--yes", action="store_true", help="do not ask")
    args = parser.parse_args(argv)
    project = args.project_dir.resolve()
    if args.command == "up":
        choices = StackChoices(args.domain, args.hosted_zone_id, args.certificate_arn, args.alarm_topic_arn)
        up(project, args.stage, args.region, choices)
        return 0
    if not args.yes and input(f"Remove stage {args.stage}'s API and functions? Type the stage name: ") != args.stage:
        print("nothing removed")
        return 1
    down(project, args.stage, args.region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
