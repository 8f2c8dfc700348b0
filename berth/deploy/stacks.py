"""CloudFormation stacks through change sets, as `aws cloudformation deploy` does it, with
boto3 only: create or update, nothing to do when nothing changed, the stack's events printed
while it works, its outputs at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

# A change set that changes nothing fails with one of these reasons; that is success here.
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
POLL_SECONDS = 5


class StackFailed(Exception):
    def __init__(self, message: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons  # why resources failed, from the stack's events

    def because(self, *texts: str) -> bool:
        return any(text in reason for reason in self.reasons for text in texts)


class Stacks:
    def __init__(self, cloudformation: Any, say: Callable[[str], None] = print,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._cfn = cloudformation
        self._say = say
        self._sleep = sleep

    def describe(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._cfn.describe_stacks(StackName=name)["Stacks"][0])
        except ClientError as err:
            if "does not exist" in str(err):
                return None
            raise

    def outputs(self, name: str) -> dict[str, str]:
        stack = self.describe(name) or {}
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def parameters(self, name: str) -> dict[str, str]:
        stack = self.describe(name) or {}
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}

    def deploy(self, name: str, template: dict[str, str], parameters: dict[str, str] | None = None,
               capabilities: tuple[str, ...] = (),
               import_resources: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """Create or update `name` from `template` ({"TemplateBody": ...} or {"TemplateURL": ...});
        with `import_resources`, adopt existing resources into a new stack instead."""
        stack = self.describe(name)
        if stack and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            # A first creation that failed leaves a stack that can only be deleted.
            self.delete(name)
            stack = None
        exists = stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS"
        kind = "IMPORT" if import_resources else "UPDATE" if exists else "CREATE"
        request: dict[str, Any] = {
            "StackName": name, "ChangeSetName": f"berth-{int(time.time())}", "ChangeSetType": kind,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
            "Capabilities": list(capabilities), **template,
        }
        if import_resources:
            request["ResourcesToImport"] = import_resources
        change_set = self._cfn.create_change_set(**request)["Id"]
        if not self._change_set_ready(change_set):
            self._say(f"{name}: no changes")
            return self.outputs(name)
        since = self._latest_event(name)
        self._say(f"{name}: {kind.lower()} started")
        self._cfn.execute_change_set(ChangeSetName=change_set)
        self._follow(name, since)
        return self.outputs(name)

    def delete(self, name: str, retry: Callable[[StackFailed], float | None] | None = None) -> None:
        """Delete `name`. A failed deletion that `retry` answers with a number of seconds is
        tried again after that long (None: give up)."""
        while self.describe(name) is not None:
            since = self._latest_event(name)
            self._say(f"{name}: delete started")
            self._cfn.delete_stack(StackName=name)
            try:
                self._follow(name, since)
                return
            except StackFailed as failure:
                wait = retry(failure) if retry else None
                if wait is None:
                    raise
                self._say(f"{name}: waiting {wait:.0f} s before deleting it again")
                self._sleep(wait)

    def _change_set_ready(self, change_set: str) -> bool:
        while True:
            described = self._cfn.describe_change_set(ChangeSetName=change_set)
            status, reason = described["Status"], described.get("StatusReason", "")
            if status == "CREATE_COMPLETE":
                return True
            if status == "FAILED":
                if any(text in reason for text in NO_CHANGES):
                    self._cfn.delete_change_set(ChangeSetName=change_set)
                    return False
                raise StackFailed(f"change set failed: {reason}")
            self._sleep(POLL_SECONDS)

    def _events(self, name: str) -> list[dict[str, Any]]:
        try:
            return list(self._cfn.describe_stack_events(StackName=name)["StackEvents"])  # newest first
        except ClientError:
            return []  # a stack deleted meanwhile has none

    def _latest_event(self, name: str) -> str | None:
        events = self._events(name)
        return str(events[0]["EventId"]) if events else None

    def _follow(self, name: str, since: str | None) -> None:
        """Print the stack's new events until it stops changing; raise if it did not succeed."""
        seen = {since} if since else set()
        reasons: list[str] = []
        while True:
            stack = self.describe(name)
            fresh = []
            for event in self._events(name):
                if event["EventId"] in seen:
                    break
                fresh.append(event)
            for event in reversed(fresh):
                seen.add(event["EventId"])
                reason = f"  {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
                self._say(f"  {event['LogicalResourceId']}: {event['ResourceStatus']}{reason}")
                if event["ResourceStatus"].endswith("_FAILED") and reason:
                    reasons.append(reason.strip())
            status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
            if not status.endswith("_IN_PROGRESS"):
                if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE", "DELETE_COMPLETE"):
                    raise StackFailed(f"{name}: {status}", tuple(reasons))
                self._say(f"{name}: {status}")
                return
            self._sleep(POLL_SECONDS)
