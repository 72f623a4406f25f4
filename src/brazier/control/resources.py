"""Tags, resource policies and account settings of functions."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from brazier.control import rules
from brazier.control.commands import AddPermission, AuthorizeFunctionAccess
from brazier.control.egress_tags import check_egress_tag
from brazier.model.arns import LATEST, function_arn, parse_function_ref, resolve_ref
from brazier.model.errors import (
    AccessDeniedException,
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from brazier.model.identity import Caller
from brazier.model.policy import PRINCIPAL_ACCOUNT, AccessRequest, allows
from brazier.store.base import MetadataStore

TOTAL_CODE_SIZE = 80_530_636_800
CODE_SIZE_UNZIPPED = 262_144_000
CODE_SIZE_ZIPPED = 52_428_800

_SERVICE_PRINCIPAL = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$|^[a-z0-9.-]+\.amazon\.com$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ALIAS_NAME = re.compile(r"(?!^[0-9]+$)[a-zA-Z0-9-_]+")  # the model's Alias pattern
_IAM_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:(iam|sts)::\d{12}:.+$")

# The actions a function's resource policy can grant another account (Lambda's list for
# cross-account access). Every other action on another account's function is refused.
GRANTABLE_ACTIONS = frozenset({
    "lambda:InvokeFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
    "lambda:UpdateFunctionCode", "lambda:DeleteFunction", "lambda:PublishVersion",
    "lambda:ListVersionsByFunction", "lambda:ListAliases", "lambda:GetAlias",
    "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:DeleteAlias", "lambda:GetPolicy",
    "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency", "lambda:ListTags",
    "lambda:TagResource", "lambda:UntagResource",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class AccountSettings:
    concurrent_executions: int
    function_count: int
    total_code_size: int


class ResourceService:
    def __init__(self, store: MetadataStore, *, account_concurrency: int) -> None:
        self.store = store
        self.account_concurrency = account_concurrency

    # -- tags -----------------------------------------------------------------------------------

    async def _tag_target(self, caller: Caller, resource: str) -> str:
        name, qualifier = resolve_ref(resource, None, region=caller.region, account=caller.account)
        if qualifier is not None:
            raise InvalidParameterValueException(
                "Tags on function aliases and versions are not supported. Please specify a"
                " function ARN."
            )
        return name

    async def list_tags(self, caller: Caller, resource: str) -> dict[str, str]:
        name = await self._tag_target(caller, resource)
        tags = await self.store.get_tags(caller.account, caller.region, name)
        if tags is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name)
            )
        return tags

    async def tag(self, caller: Caller, resource: str, tags: Mapping[str, str]) -> None:
        if not tags:
            raise InvalidParameterValueException(
                "An error occurred and the request cannot be processed."
            )
        check_egress_tag(tags)
        current = await self.list_tags(caller, resource)
        merged = {**current, **tags}
        rules.check_tag_count(merged)
        name = await self._tag_target(caller, resource)
        await self.store.set_tags(caller.account, caller.region, name, merged)

    async def untag(self, caller: Caller, resource: str, keys: Sequence[str]) -> None:
        current = await self.list_tags(caller, resource)
        name = await self._tag_target(caller, resource)
        remaining = {k: v for k, v in current.items() if k not in set(keys)}
        await self.store.set_tags(caller.account, caller.region, name, remaining)

    # -- resource policies ----------------------------------------------------------------------

    async def authorize(self, caller: Caller, cmd: AuthorizeFunctionAccess) -> Caller:
        """The caller to act as: the caller itself for its own functions; the function's account
        when the caller names another account's function by ARN and that function's resource
        policy (of the version or alias named) grants the action; else AccessDeniedException.

        A function that does not exist grants nothing: another account cannot tell it from one
        that refuses (Lambda answers 403 either way, recorded as test_function_arns)."""
        try:
            ref = parse_function_ref(cmd.function)
        except InvalidParameterValueException:
            return caller  # the operation itself rejects the name
        if ref.account is None or ref.account == caller.account:
            return caller
        if ref.region is not None and ref.region != caller.region:
            return caller  # "not reachable in this region", answered by the operation
        qualifier = ref.qualifier or cmd.qualifier
        qualifier = None if qualifier == LATEST else qualifier
        arn = function_arn(caller.region, ref.account, ref.name, qualifier)
        if cmd.action in GRANTABLE_ACTIONS:
            found = await self.store.get_policy(
                ref.account, caller.region, ref.name, qualifier or ""
            )
            request = AccessRequest(
                action=cmd.action,
                resource=arn,
                principal_account=caller.account,
                context={PRINCIPAL_ACCOUNT: caller.account},
            )
            if found is not None and allows(found[0], request):
                return Caller(account=ref.account, region=caller.region)
        raise AccessDeniedException(
            f"User: arn:aws:iam::{caller.account}:root is not authorized to perform:"
            f" {cmd.action} on resource: {arn} because no resource-based policy allows the"
            f" {cmd.action} action"
        )

    async def _policy_target(
        self, caller: Caller, function: str, qualifier: str | None
    ) -> tuple[str, str]:
        name, q = resolve_ref(function, qualifier, region=caller.region, account=caller.account)
        if q is not None and _ALIAS_NAME.fullmatch(q):
            alias = await self.store.get_alias(caller.account, caller.region, name, q)
            if alias is None:
                raise ResourceNotFoundException(
                    "Cannot find alias arn: " + function_arn(caller.region, caller.account, name, q)
                )
            return name, q
        fv = await self.store.get_version(caller.account, caller.region, name, q or LATEST)
        if fv is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name, q)
            )
        return name, (q or "")

    @staticmethod
    def _principal(principal: str) -> str | dict[str, str]:
        if principal == "*":
            return "*"
        if _SERVICE_PRINCIPAL.match(principal):
            return {"Service": principal}
        if _ACCOUNT.match(principal):
            return {"AWS": f"arn:aws:iam::{principal}:root"}
        if _IAM_ARN.match(principal):
            return {"AWS": principal}
        raise InvalidParameterValueException(
            "The provided principal was invalid. Please check the principal and try again."
        )

    async def add_permission(self, caller: Caller, cmd: AddPermission) -> dict[str, object]:
        name, qualifier = await self._policy_target(caller, cmd.function, cmd.qualifier)
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "We currently do not support adding policies for $LATEST."
            )
        statement: dict[str, object] = {
            "Sid": cmd.statement_id,
            "Effect": "Allow",
            "Principal": self._principal(cmd.principal),
            "Action": cmd.action,
            "Resource": function_arn(caller.region, caller.account, name, qualifier or None),
        }
        equals: dict[str, str] = {}
        if cmd.source_account:
            equals["AWS:SourceAccount"] = cmd.source_account
        if cmd.event_source_token:
            equals["lambda:EventSourceToken"] = cmd.event_source_token
        if cmd.function_url_auth_type:
            equals["lambda:FunctionUrlAuthType"] = cmd.function_url_auth_type
        if cmd.principal_org_id:
            equals["aws:PrincipalOrgID"] = cmd.principal_org_id
        condition: dict[str, object] = {}
        if equals:
            condition["StringEquals"] = equals
        if cmd.source_arn:
            condition["ArnLike"] = {"AWS:SourceArn": cmd.source_arn}
        if condition:
            statement["Condition"] = condition
        existing = await self.store.get_policy(caller.account, caller.region, name, qualifier)
        statements, revision = existing if existing else ([], None)
        if cmd.revision_id is not None and cmd.revision_id != revision:
            raise _revision_mismatch(cmd.revision_id)
        if any(s.get("Sid") == cmd.statement_id for s in statements):
            raise ResourceConflictException(
                f"The statement id ({cmd.statement_id}) provided already exists. Please provide"
                " a new statement id, or remove the existing statement."
            )
        ok = await self.store.put_policy(
            caller.account,
            caller.region,
            name,
            qualifier,
            [*statements, statement],
            str(uuid.uuid4()),
            expected_revision=revision,
        )
        if not ok:
            raise ResourceConflictException(
                "The policy was changed by another request. Retry the request."
            )
        return statement

    async def get_policy(
        self, caller: Caller, function: str, qualifier: str | None
    ) -> tuple[str, str]:
        name, q = resolve_ref(function, qualifier, region=caller.region, account=caller.account)
        found = await self.store.get_policy(caller.account, caller.region, name, q or "")
        if found is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        statements, revision = found
        doc = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
        return json.dumps(doc, separators=(",", ":")), revision

    async def remove_permission(
        self,
        caller: Caller,
        function: str,
        statement_id: str,
        qualifier: str | None,
        revision_id: str | None,
    ) -> None:
        try:
            name, q = await self._policy_target(caller, function, qualifier)
        except ResourceNotFoundException as e:
            if not e.message.startswith("Function not found: "):
                raise
            raise ResourceNotFoundException(
                e.message.replace("Function not found: ", "No policy found for: ", 1)
            ) from None
        found = await self.store.get_policy(caller.account, caller.region, name, q)
        if found is None:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        statements, revision = found
        if revision_id is not None and revision_id != revision:
            raise _revision_mismatch(revision_id)
        remaining = [s for s in statements if s.get("Sid") != statement_id]
        if len(remaining) == len(statements):
            raise ResourceNotFoundException(
                f"Statement {statement_id} is not found in resource policy."
            )
        await self.store.put_policy(
            caller.account,
            caller.region,
            name,
            q,
            remaining,
            str(uuid.uuid4()),
            expected_revision=revision,
        )

    # -- account --------------------------------------------------------------------------------

    async def account_settings(self, caller: Caller) -> AccountSettings:
        usage = await self.store.usage(caller.account)
        return AccountSettings(
            concurrent_executions=self.account_concurrency,
            function_count=usage.function_count,
            total_code_size=usage.total_code_size,
        )


def _revision_mismatch(given: str) -> PreconditionFailedException:
    """Lambda's words for a policy RevisionId that does not match: a revision id (a UUID) that
    is not the current one points at GetFunction/GetAlias, anything else at GetPolicy
    (recorded: test_lambda_permission_revisions, test_function_revisions_permissions and
    test_lambda_permission_fn_versioning, the last two sending "wrong")."""
    try:
        uuid.UUID(given)
        where = "GetFunction/GetAlias"
    except ValueError:
        where = "GetPolicy"
    return PreconditionFailedException(
        "The Revision Id provided does not match the latest Revision Id. Call the"
        f" {where} API to retrieve the latest Revision Id"
    )
