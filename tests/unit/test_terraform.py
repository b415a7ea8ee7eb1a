"""terraform/ read as a specification: the deployment's security and cost rules, asserted on the
HCL itself (python-hcl2), plus `terraform fmt`.

Each environment is a thin root module that calls modules/stack once; the stack composes the seven
modules. Checks on the composition run against each environment's effective configuration: the
stack's module calls, with `var.*` resolved through that environment's `module "arus"` call to
its own locals and variable defaults.

Providers cannot be downloaded here, so `terraform validate/plan` never run; these tests are
what holds the structure (and one runs `terraform init` offline, which reads the lock files).
tools/checkov.sh is the separate static security scan.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.support.ledgers import REPO

TERRAFORM = REPO / "terraform"
MODULES = ("cloud_sql", "functions", "pubsub", "secrets", "scheduler", "iam", "monitoring")
STACK = "stack"  # the module that composes MODULES; each environment calls it once
ENVIRONMENTS = ("dev", "prod")
FUNCTIONS = {"post_entry", "query", "relay", "daily_close"}
# SPEC §3.6: one database login per job (the `arus app-user --role` values), its group role
# and the functions that connect as it.
DB_ROLES = {
    "api": ("arus_app", {"post_entry", "query"}),
    "relay": ("arus_relay", {"relay"}),
    "close": ("arus_close", {"daily_close"}),
}
LEGACY_APP_USER = "arus_app_user"  # the one user every function shared before; removed last
PUBLIC_FUNCTIONS = {"post_entry", "query"}
SCHEDULED_FUNCTIONS = {"relay", "daily_close"}

# Every role the deployment grants. A new role is a security decision: add it here on purpose.
ALLOWED_ROLES = {
    "roles/cloudsql.client",
    "roles/secretmanager.secretAccessor",
    "roles/pubsub.publisher",
    "roles/pubsub.subscriber",
    "roles/run.invoker",
    "roles/logging.logWriter",
    "roles/storage.objectAdmin",
    "roles/storage.objectViewer",
    "roles/artifactregistry.writer",
    "roles/cloudtrace.agent",  # the functions write their spans (ADR-010)
}
PRIMITIVE_ROLE = re.compile(r"roles/(owner|editor|viewer)\b")
PUBLIC_MEMBER = re.compile(r"\ball(Authenticated)?Users\b")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL", re.IGNORECASE)
META_KEYS = {
    "__is_block__",
    "__comments__",
    "__inline_comments__",
    "__start_line__",
    "__end_line__",
}


# --- reading HCL ---------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    # python-hcl2 >= 7 keeps the quotes of string literals ('"abc"'); older versions do not.
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _clean(v) for k, v in node.items() if k not in META_KEYS}
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


@dataclass
class Config:
    """The merged top-level blocks of one Terraform directory (a module or an environment)."""

    path: Path
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    ephemerals: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        assert (kind, name) in self.resources, f"{self.path}: no resource {kind}.{name}"
        return self.resources[(kind, name)]

    def resources_of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for (k, name), body in self.resources.items() if k == kind}


def _parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return _clean(hcl2.load(handle))


def load(directory: Path) -> Config:
    config = Config(path=directory.relative_to(TERRAFORM.parent))
    files = sorted(directory.glob("*.tf"))
    assert files, f"{directory} has no .tf file"
    for path in files:
        parsed = _parse(path)
        config.text += path.read_text()
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    config.resources[(kind, name)] = body
        for block in parsed.get("data", []):
            for kind, named in block.items():
                for name, body in named.items():
                    config.data[(kind, name)] = body
        for block in parsed.get("ephemeral", []):
            for kind, named in block.items():
                for name, body in named.items():
                    config.ephemerals[(kind, name)] = body
        for block in parsed.get("variable", []):
            config.variables.update(block)
        for block in parsed.get("output", []):
            config.outputs.update(block)
        for block in parsed.get("locals", []):
            config.locals.update(block)
        for block in parsed.get("module", []):
            config.modules.update(block)
        config.terraform.extend(parsed.get("terraform", []))
        config.removed.extend(parsed.get("removed", []))
        config.moved.extend(parsed.get("moved", []))
    return config


def tfvars(directory: Path) -> dict[str, Any]:
    """The values Terraform loads by itself from `*.auto.tfvars` in a root module."""
    values: dict[str, Any] = {}
    for path in sorted(directory.glob("*.auto.tfvars")):
        values.update(_parse(path))
    return values


REFERENCE = re.compile(r"(var|local)\.(\w+)((?:\.\w+)*)")


@dataclass
class Environment:
    """One environment as Terraform would compose it: its root module and the stack it calls."""

    name: str
    root: Config  # terraform/environments/<name>: locals, variables, outputs, providers
    stack: Config  # terraform/modules/stack: the seven module calls, shared by every environment
    values: dict[str, Any] = field(default_factory=dict)  # its *.auto.tfvars

    @property
    def call(self) -> dict[str, Any]:
        """The root module's one call of the stack."""
        assert set(self.root.modules) == {"arus"}, f"{self.root.path}: {set(self.root.modules)}"
        return self.root.modules["arus"]

    @property
    def modules(self) -> dict[str, dict[str, Any]]:
        """The module calls this environment deploys (made by the stack on its behalf)."""
        return self.stack.modules

    def value(self, expression: Any) -> Any:
        """`expression`, an argument of the stack, with var.* and local.* references resolved to
        this environment's values; other expressions (module outputs, functions) stay as text."""
        return self._resolve(expression, in_stack=True)

    def _resolve(self, expression: Any, *, in_stack: bool) -> Any:
        if not isinstance(expression, str):
            return expression
        whole = re.fullmatch(r"\$\{" + REFERENCE.pattern + r"\}", expression)
        if whole:
            return self._lookup(whole.group(1), whole.group(2), whole.group(3), in_stack=in_stack)

        def interpolate(match: re.Match[str]) -> str:
            found = self._lookup(match.group(2), match.group(3), match.group(4), in_stack=in_stack)
            return found if isinstance(found, str) and "${" not in found else match.group(0)

        return re.sub(r"\$\{(" + REFERENCE.pattern + r")\}", interpolate, expression)

    def _lookup(self, kind: str, name: str, path: str, *, in_stack: bool) -> Any:
        if in_stack and kind == "var":
            assert name in self.stack.variables, f"stack has no variable {name}"
            assert name in self.call, f"{self.name}: module.arus does not set {name}"
            found = self._resolve(self.call[name], in_stack=False)
        elif in_stack:
            assert name in self.stack.locals, f"stack has no local {name}"
            found = self._resolve(self.stack.locals[name], in_stack=True)
        elif kind == "var":
            assert name in self.root.variables, f"{self.name} has no variable {name}"
            found = self.values.get(name, self.root.variables[name].get("default"))
            if found is None:
                found = f"${{var.{name}}}"
        else:
            assert name in self.root.locals, f"{self.name} has no local {name}"
            found = self._resolve(self.root.locals[name], in_stack=False)
        for attribute in filter(None, path.split(".")):
            assert isinstance(found, dict) and attribute in found, (self.name, name, attribute)
            found = found[attribute]
        return found


def one(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name} block: {blocks!r}"
    block = blocks[0]
    assert isinstance(block, dict)
    return block


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def strings(node: Any) -> Iterator[str]:
    for item in walk(node):
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from (key for key in item if isinstance(key, str))


def service_config(functions: Config) -> dict[str, Any]:
    """The service_config block of the functions module's one function resource."""
    return one(functions.resource("google_cloudfunctions2_function", "function"), "service_config")


def local_name(expression: str) -> str:
    match = re.fullmatch(r"\$\{local\.(\w+)\}", expression)
    assert match, f"expected a reference to a local value, got {expression!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def modules() -> dict[str, Config]:
    return {name: load(TERRAFORM / "modules" / name) for name in MODULES}


@pytest.fixture(scope="module")
def stack() -> Config:
    return load(TERRAFORM / "modules" / STACK)


@pytest.fixture(scope="module")
def environments(stack: Config) -> dict[str, Environment]:
    return {
        name: Environment(
            name,
            load(TERRAFORM / "environments" / name),
            stack,
            tfvars(TERRAFORM / "environments" / name),
        )
        for name in ENVIRONMENTS
    }


@pytest.fixture(scope="module")
def everything(
    modules: dict[str, Config], stack: Config, environments: dict[str, Environment]
) -> list[Config]:
    return [*modules.values(), stack, *(env.root for env in environments.values())]


# --- layout --------------------------------------------------------------------------------------


def test_layout_is_seven_modules_and_two_environments_that_compose_them(
    stack: Config, environments: dict[str, Environment]
) -> None:
    found_modules = {p.name for p in (TERRAFORM / "modules").iterdir() if p.is_dir()}
    found_envs = {p.name for p in (TERRAFORM / "environments").iterdir() if p.is_dir()}
    assert found_modules == {*MODULES, STACK}
    assert found_envs == set(ENVIRONMENTS)
    sources = {module["source"] for module in stack.modules.values()}
    assert sources == {f"../{m}" for m in MODULES}, f"the stack composes {sources}"
    # Beside the module calls, only the project's APIs, the waits for them and for IAM, and the
    # project's number.
    assert set(stack.resources) == {
        ("google_project_service", "enabled"),
        ("time_sleep", "apis_enabled"),
        ("time_sleep", "iam_propagated"),
    }
    assert set(stack.data) == {("google_project", "this")}
    for required in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        assert (TERRAFORM / "modules" / STACK / required).is_file(), (STACK, required)
    for name, env in environments.items():
        # A thin root: one call of the stack, nothing deployed directly.
        assert env.call["source"] == f"../../modules/{STACK}", name
        assert not env.root.resources and not env.root.data, f"{name} declares resources"
        # Every stack variable is set by the call (none has a default to fall back on) and the
        # call sets nothing the stack does not declare.
        arguments = set(env.call) - {"source"}
        assert arguments == set(stack.variables), f"{name}: {arguments ^ set(stack.variables)}"
        assert not any("default" in v for v in stack.variables.values())
        for required in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (TERRAFORM / "environments" / name / required).is_file(), (name, required)


def test_every_tf_file_parses() -> None:
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert len(files) >= 7 * 4 + 2 * 4, f"only {len(files)} .tf files"
    for path in files:
        assert isinstance(_parse(path), dict), path


# --- identities ----------------------------------------------------------------------------------


def test_every_function_has_its_own_service_account(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    iam, functions = modules["iam"], modules["functions"]

    account = iam.resource("google_service_account", "function")
    assert account["for_each"] == "${toset(var.function_names)}"
    assert "each.key" in account["account_id"], "the account id must be derived from the function"
    assert "distinct" in str(iam.variables["function_names"]["validation"])

    assert set(functions.locals["functions"]) == FUNCTIONS
    function = functions.resource("google_cloudfunctions2_function", "function")
    assert function["for_each"] == "${local.functions}"
    service = one(function, "service_config")
    assert service["service_account_email"] == "${var.service_account_emails[each.key]}"
    # A map that repeats an email (two functions sharing an identity) fails validation.
    validation = str(functions.variables["service_account_emails"]["validation"])
    assert "distinct(values(var.service_account_emails))" in validation

    for name, env in environments.items():
        assert set(env.value(env.modules["iam"]["function_names"])) == FUNCTIONS, name
        assert len(env.value(env.modules["iam"]["function_names"])) == len(FUNCTIONS), name
        assert set(env.value(env.modules["functions"]["source_archives"])) == FUNCTIONS, name
        emails = env.modules["functions"]["service_account_emails"]
        assert emails == "${module.iam.function_service_account_emails}", name
        # Resource names (service accounts included) are per environment.
        for module in ("secrets", "db_login_secrets", "cloud_sql", "iam", "functions", "scheduler"):
            prefix = env.value(env.modules[module]["name_prefix"])
            assert prefix == f"arus-{name}", (name, module, prefix)


def test_no_primitive_role_is_granted_anywhere(everything: list[Config]) -> None:
    granted: set[str] = set()
    for config in everything:
        assert not PRIMITIVE_ROLE.search(config.text), f"primitive role in {config.path}"
        for (kind, name), body in config.resources.items():
            assert not kind.endswith(("_iam_policy", "_iam_binding")), (
                f"{config.path}: {kind}.{name} is authoritative; grant with *_iam_member"
            )
            if kind.endswith("_iam_member"):
                granted.add(body["role"])
    assert granted, "no IAM grant found at all"
    assert granted <= ALLOWED_ROLES, f"unexpected roles: {granted - ALLOWED_ROLES}"


def test_project_wide_grants_are_narrowed_by_conditions(modules: dict[str, Config]) -> None:
    project_grants = modules["iam"].resources_of("google_project_iam_member")
    assert {g["role"] for g in project_grants.values()} == {
        "roles/cloudsql.client",
        "roles/logging.logWriter",
        "roles/storage.objectAdmin",
        "roles/cloudtrace.agent",
    }
    # Logs and traces are written to the project itself: no condition can narrow those two.
    for name, grant in project_grants.items():
        if grant["role"] in {"roles/logging.logWriter", "roles/cloudtrace.agent"}:
            continue
        condition = one(grant, "condition")
        assert condition["expression"], name
    sql = modules["iam"].locals["ledger_instance_condition"]
    assert "sqladmin.googleapis.com/Instance" in sql and "local.ledger_instance_names" in sql
    names = modules["iam"].locals["ledger_instance_names"]
    assert "for name in var.sql_instance_names" in names and "resource.name ==" in names
    storage = one(project_grants["build_function_sources"], "condition")["expression"]
    assert 'startsWith("projects/_/buckets/gcf-v2-")' in storage


def test_secret_accessor_is_granted_on_each_functions_own_secret_only(
    modules: dict[str, Config],
) -> None:
    iam = modules["iam"]
    accessors = iam.resources_of("google_secret_manager_secret_iam_member")
    assert set(accessors) == {"login_password_accessor"}, set(accessors)
    accessor = accessors["login_password_accessor"]
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    assert accessor["secret_id"] == "${var.function_db_password_secrets[each.key]}"
    assert accessor["for_each"] == "${google_service_account.function}"
    assert accessor["member"] == "serviceAccount:${each.value.email}"
    for body in iam.resources_of("google_project_iam_member").values():
        assert "secretmanager" not in body["role"]


def test_only_the_relay_publishes_events(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    publisher = modules["iam"].resource("google_pubsub_topic_iam_member", "events_publisher")
    assert publisher["role"] == "roles/pubsub.publisher"
    assert publisher["topic"] == "${var.events_topic_id}"
    assert publisher["for_each"] == "${toset(var.publisher_functions)}"
    assert modules["iam"].variables["publisher_functions"]["default"] == ["relay"]
    for name, env in environments.items():
        assert env.modules["iam"]["publisher_functions"] == ["relay"], name


# --- functions -----------------------------------------------------------------------------------


def _function_environment(functions: Config) -> dict[str, Any]:
    """A function's plain environment: the shared local, merged with what each function adds
    (`merge(local.<name>, { KEY = expression, ... })`)."""
    variables = service_config(functions)["environment_variables"]
    merged = re.fullmatch(r"\$\{merge\(local\.(\w+), \{(.*)\}\)\}", variables, re.DOTALL)
    assert merged, f"expected merge(local.<shared>, {{...}}), got {variables!r}"
    shared = functions.locals[merged.group(1)]
    assert isinstance(shared, dict), shared
    added = dict(re.findall(r"(\w+) = ([^,]+)", merged.group(2)))
    assert added and not set(added) & set(shared), (added, shared)
    return {**shared, **{key: f"${{{value.strip()}}}" for key, value in added.items()}}


def test_no_secret_in_plain_environment_variables(
    modules: dict[str, Config], everything: list[Config]
) -> None:
    functions = modules["functions"]
    plain = _function_environment(functions)
    assert {
        "ARUS_PLACEMENTS",
        "ARUS_DB_NAME",
        "ARUS_DB_USER",
        "ARUS_OUTBOX_TRANSPORT",
        "ARUS_PUBSUB_TOPIC",
        "ARUS_DB_IP_TYPE",
    } <= set(plain)
    assert plain["ARUS_OUTBOX_TRANSPORT"] == "pubsub"
    assert plain["ARUS_PUBSUB_TOPIC"] == "${var.events_topic_id}"
    assert plain["ARUS_PLACEMENTS"] == "${local.arus_placements}"
    for key, value in plain.items():
        assert not SECRET_NAME.search(key), f"{key} looks like a secret in plain env"
        assert "password" not in str(value).lower() and "secret" not in str(value).lower(), key

    # Wherever environment_variables appears, in any module or environment, same rule.
    for config in everything:
        for node in walk([*config.resources.values(), config.locals]):
            if isinstance(node, dict) and isinstance(node.get("environment_variables"), dict):
                for key in node["environment_variables"]:
                    assert not SECRET_NAME.search(key), f"{config.path}: {key} in plain env"

    service = service_config(functions)
    secret = one(service, "secret_environment_variables")
    assert secret == {
        "key": "ARUS_DB_PASSWORD",
        "project_id": "${var.project_id}",
        "secret": "${var.db_logins[var.function_db_roles[each.key]].password_secret_id}",
        "version": "${var.db_logins[var.function_db_roles[each.key]].password_secret_version}",
    }


def test_the_password_is_generated_and_never_output_in_clear(
    modules: dict[str, Config], environments: dict[str, Environment], everything: list[Config]
) -> None:
    secrets = modules["secrets"]
    # Ephemeral, and written only through write-only arguments: in neither plan nor state.
    assert ("random_password", "db") not in secrets.resources
    assert secrets.ephemerals[("random_password", "db")]["length"] >= 24
    version = secrets.resource("google_secret_manager_secret_version", "db_password")
    assert "secret_data" not in version
    assert version["secret_data_wo"] == "${ephemeral.random_password.db.result}"
    assert version["secret_data_wo_version"] == "${var.password_version}"
    assert secrets.outputs["password"]["ephemeral"] is True
    user = modules["cloud_sql"].resource("google_sql_user", "ledger")
    assert "password" not in user
    assert user["password_wo"] == "${var.user_password}"
    assert user["password_wo_version"] == "${var.user_password_version}"
    assert modules["cloud_sql"].variables["user_password"]["ephemeral"] is True
    for config in everything:
        for name, output in config.outputs.items():
            value = str(output["value"])
            if "password.db.result" in value or value.endswith(".password}"):
                # Ephemeral (never in state) or at least sensitive.
                hidden = output.get("ephemeral") is True or output.get("sensitive") is True
                assert hidden, f"{config.path}: output {name}"
    for name, env in environments.items():
        # The environment's outputs forward the stack's, one to one; what the stack outputs is
        # what the environment exposes.
        for output, body in env.root.outputs.items():
            assert body["value"] == f"${{module.arus.{output}}}", (name, output)
        assert set(env.root.outputs) == set(env.stack.outputs), name
        exposed = " ".join(str(o["value"]) for o in env.stack.outputs.values())
        assert "module.secrets.password" not in exposed, name
        assert env.modules["cloud_sql"]["user_password"] == "${module.secrets.password}"
        assert env.modules["cloud_sql"]["user_password_version"] == (
            "${module.secrets.password_version}"
        )


def test_source_objects_are_named_after_the_archive_hash(modules: dict[str, Config]) -> None:
    functions = modules["functions"]
    source = functions.resource("google_storage_bucket_object", "source")
    assert source["for_each"] == "${var.source_archives}"
    assert re.search(r"\$\{file(sha256|md5)\(each\.value\)\}", source["name"]), source["name"]
    assert source["source"] == "${each.value}"
    build = one(functions.resource("google_cloudfunctions2_function", "function"), "build_config")
    storage = one(one(build, "source"), "storage_source")
    assert storage["object"] == "${google_storage_bucket_object.source[each.key].name}"
    assert build["entry_point"] == "${each.key}"


def test_jobs_are_internal_and_have_no_public_invoker(
    modules: dict[str, Config], everything: list[Config]
) -> None:
    functions = modules["functions"]
    declared = functions.locals["functions"]
    for name in SCHEDULED_FUNCTIONS:
        assert declared[name]["ingress"] == "ALLOW_INTERNAL_ONLY", name
    for name in PUBLIC_FUNCTIONS:
        assert declared[name]["ingress"] == "ALLOW_ALL", name
    ingress = service_config(functions)
    assert ingress["ingress_settings"] == "${each.value.ingress}"

    public_grants = 0
    for config in everything:
        for (kind, name), body in config.resources.items():
            if not PUBLIC_MEMBER.search(str(body.get("member", ""))):
                continue
            public_grants += 1
            assert (config.path.name, kind, name) == (
                "functions",
                "google_cloud_run_v2_service_iam_member",
                "public_invoker",
            ), f"public grant {kind}.{name} in {config.path}"
            assert body["role"] == "roles/run.invoker"
            granted_to = body["for_each"]
            assert granted_to == "${toset(local.public_functions)}", granted_to
        # allUsers may appear nowhere else (for example in a binding's members list).
        mentions = [s for s in strings(list(config.resources.values())) if PUBLIC_MEMBER.search(s)]
        assert len(mentions) <= 1, f"{config.path}: {mentions}"
    assert public_grants == 1
    assert set(functions.locals["public_functions"]) == PUBLIC_FUNCTIONS
    assert set(functions.locals["scheduled_functions"]) == SCHEDULED_FUNCTIONS


def test_connection_budget_holds_while_two_revisions_run(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Issue 16, item 7: during a deploy the old and the new revision serve side by side, each
    able to scale to its ceiling, so 2 x sum(max instances x (pool + overflow)) must fit in the
    instance's max_connections less what is reserved (PostgreSQL's 3 superuser slots and the
    operator's sessions), for the defaults each environment ships."""
    functions = modules["functions"]
    assert functions.locals["revisions_during_deploy"] == 2
    budget = functions.locals["connection_budget"]
    assert budget.startswith("${local.revisions_during_deploy * sum(["), budget
    assert "var.max_instance_count[name] * local.connections_per_instance" in budget
    assert functions.locals["connections_per_instance"] == (
        "${var.db_pool_size + var.db_max_overflow}"
    )
    function = functions.resource("google_cloudfunctions2_function", "function")
    precondition = one(one(function, "lifecycle"), "precondition")
    assert precondition["condition"] == "${local.connection_budget <= var.db_connection_limit}"
    for name, env in environments.items():
        wired = env.modules["functions"]
        assert wired["db_connection_limit"] == (
            "${var.database.max_connections - var.database.reserved_connections}"
        ), name
        database = env.value("${var.database}")
        max_connections, reserved = database["max_connections"], database["reserved_connections"]
        assert reserved >= 3 + 1, f"{name}: 3 superuser slots and an operator session"
        pool_size = env.value(wired["db_pool_size"])
        max_overflow = env.value(wired["db_max_overflow"])
        assert isinstance(pool_size, int) and isinstance(max_overflow, int), name
        max_instances = env.value(wired["max_instance_count"])
        assert set(max_instances) == FUNCTIONS, name
        per_revision = sum(max_instances[f] for f in FUNCTIONS) * (pool_size + max_overflow)
        assert 2 * per_revision <= max_connections - reserved, (
            f"{name}: 2 revisions x {per_revision} connections > "
            f"{max_connections} - {reserved} reserved"
        )
    tiers = {env.value("${var.database}")["tier"]: env.value("${var.database}")["max_connections"]
             for env in environments.values()}  # fmt: skip
    # The tiers' default max_connections (Cloud SQL for PostgreSQL, by memory).
    assert tiers == {"db-f1-micro": 25, "db-custom-1-3840": 100}, tiers


# --- scheduler -----------------------------------------------------------------------------------


def test_scheduler_jobs_use_oidc_tokens_of_the_scheduler_account(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    scheduler = modules["scheduler"]
    assert set(scheduler.locals["jobs"]) == SCHEDULED_FUNCTIONS
    job = scheduler.resource("google_cloud_scheduler_job", "job")
    assert job["for_each"] == "${local.jobs}"
    assert job["time_zone"] == "Etc/UTC"
    target = one(job, "http_target")
    assert "oauth_token" not in target
    oidc = one(target, "oidc_token")
    assert oidc["service_account_email"] == "${var.scheduler_service_account_email}"
    assert oidc["audience"] == target["uri"] == "${var.targets[each.key].uri}"
    assert scheduler.variables["relay_schedule"]["default"] == "* * * * *"
    assert scheduler.variables["daily_close_schedule"]["default"] == "15 0 * * *"

    invoker = scheduler.resource("google_cloud_run_v2_service_iam_member", "scheduler_invoker")
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "serviceAccount:${var.scheduler_service_account_email}"
    assert invoker["name"] == "${var.targets[each.key].service_name}"

    for name, env in environments.items():
        wired = env.modules["scheduler"]
        assert wired["scheduler_service_account_email"] == (
            "${module.iam.scheduler_service_account_email}"
        ), name
        # Targets are the run.app URIs: internal ingress admits Cloud Scheduler only there.
        assert "module.functions.service_uris[name]" in str(wired["targets"]), name
        assert "module.functions.scheduled_functions" in str(wired["targets"]), name


# --- data stores ---------------------------------------------------------------------------------


def test_cloud_sql_has_backups_point_in_time_recovery_and_tls(modules: dict[str, Config]) -> None:
    instance = modules["cloud_sql"].resource("google_sql_database_instance", "ledger")
    settings = one(instance, "settings")
    backups = one(settings, "backup_configuration")
    assert backups["enabled"] is True
    assert backups["point_in_time_recovery_enabled"] is True
    assert backups["transaction_log_retention_days"] == "${var.transaction_log_retention_days}"
    network = one(settings, "ip_configuration")
    assert network["ssl_mode"] in {"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"}
    assert "authorized_networks" not in network
    assert settings["connector_enforcement"] == "REQUIRED"
    flags = {flag["name"]: flag["value"] for flag in settings["database_flags"]}
    assert flags["log_min_duration_statement"] == "-1"
    assert flags["cloudsql.enable_pgaudit"] == "on"
    version = modules["cloud_sql"].variables["database_version"]["default"]
    assert version in {"POSTGRES_16", "POSTGRES_17"}


def test_pubsub_subscription_orders_and_dead_letters(modules: dict[str, Config]) -> None:
    pubsub = modules["pubsub"]
    assert "default" not in pubsub.variables["topic_name"], "the stack names it per environment"
    events = pubsub.resource("google_pubsub_topic", "events")
    assert events["message_retention_duration"] == "${var.topic_message_retention}"
    subscription = pubsub.resource("google_pubsub_subscription", "example")
    assert subscription["topic"] == "${google_pubsub_topic.events.id}"
    assert subscription["enable_message_ordering"] is True
    dead_letter = one(subscription, "dead_letter_policy")
    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    kept = pubsub.resource("google_pubsub_subscription", "dead_letter")
    assert kept["topic"] == "${google_pubsub_topic.dead_letter.id}"

    agent = pubsub.locals["pubsub_service_agent"]
    assert "@gcp-sa-pubsub.iam.gserviceaccount.com" in agent
    dlq_publisher = pubsub.resource("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert dlq_publisher["topic"] == "${google_pubsub_topic.dead_letter.name}"
    assert dlq_publisher["role"] == "roles/pubsub.publisher"
    assert dlq_publisher["member"] == "${local.pubsub_service_agent}"
    subscriber = pubsub.resource("google_pubsub_subscription_iam_member", "example_subscriber")
    assert subscriber["subscription"] == "${google_pubsub_subscription.example.name}"
    assert subscriber["role"] == "roles/pubsub.subscriber"
    assert subscriber["member"] == "${local.pubsub_service_agent}"


# --- environments --------------------------------------------------------------------------------


def test_dev_uses_the_smallest_tier_with_enterprise_edition(
    environments: dict[str, Environment],
) -> None:
    dev = environments["dev"]
    assert dev.root.locals["database"]["tier"] == "db-f1-micro"
    assert dev.root.locals["database"]["edition"] == "ENTERPRISE"
    wired = dev.modules["cloud_sql"]
    assert dev.value(wired["tier"]) == "db-f1-micro"
    assert dev.value(wired["edition"]) == "ENTERPRISE"


def test_prod_differs_from_dev_in_tier_protection_instances_and_retention(
    environments: dict[str, Environment],
) -> None:
    def effective(env: Environment) -> dict[str, Any]:
        sql, functions = env.modules["cloud_sql"], env.modules["functions"]
        return {
            "tier": env.value(sql["tier"]),
            "availability_type": env.value(sql["availability_type"]),
            "deletion_protection": env.value(sql["deletion_protection"]),
            "retained_backups": env.value(sql["retained_backups"]),
            "log_days": env.value(sql["transaction_log_retention_days"]),
            "min_instance_count": env.value(functions["min_instance_count"]),
            "force_destroy_sources": env.value(functions["force_destroy_sources"]),
            "topic_retention": env.value(env.modules["pubsub"]["topic_message_retention"]),
        }

    dev, prod = effective(environments["dev"]), effective(environments["prod"])
    assert prod["tier"] != dev["tier"]
    assert (dev["availability_type"], prod["availability_type"]) == ("ZONAL", "REGIONAL")
    assert (dev["deletion_protection"], prod["deletion_protection"]) == (False, True)
    assert (dev["force_destroy_sources"], prod["force_destroy_sources"]) == (True, False)
    assert prod["retained_backups"] > dev["retained_backups"]
    assert prod["log_days"] > dev["log_days"]
    assert prod["min_instance_count"]["post_entry"] > dev["min_instance_count"]["post_entry"]
    assert prod["topic_retention"] != dev["topic_retention"]
    # The values come from each environment's locals (what the runbook says to edit).
    for name, env in environments.items():
        database = env.root.locals["database"]
        assert effective(env)["deletion_protection"] is database["deletion_protection"], name
        assert effective(env)["min_instance_count"] == env.root.locals["min_instance_count"]


def test_providers_are_pinned_and_state_is_local_by_default(
    environments: dict[str, Environment],
) -> None:
    for name, env in environments.items():
        (block,) = env.root.terraform
        providers = one(block, "required_providers")
        assert providers["google"]["source"] == "hashicorp/google"
        assert re.fullmatch(r"~> 6\.\d+", providers["google"]["version"]), name
        assert providers["random"]["source"] == "hashicorp/random"
        assert providers["random"]["version"].startswith("~> 3."), name
        assert providers["time"]["source"] == "hashicorp/time"
        assert providers["time"]["version"].startswith("~> 0."), name
        assert "backend" not in block, f"{name}: state must default to local"
        assert '# backend "gcs" {' in env.root.text, f"{name}: the commented gcs backend example"


def test_every_variable_and_output_has_a_description(everything: list[Config]) -> None:
    count = 0
    for config in everything:
        for kind, blocks in (("variable", config.variables), ("output", config.outputs)):
            for name, body in blocks.items():
                count += 1
                description = body.get("description", "")
                assert len(description.strip()) >= 10, f"{config.path}: {kind} {name}"
    assert count > 50, f"only {count} variables and outputs found"


def test_every_checkov_skip_is_justified_in_place() -> None:
    skips = 0
    for path in TERRAFORM.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" not in line:
                continue
            skips += 1
            match = re.fullmatch(r"\s*#checkov:skip=(CKV2?_GCP_\d+):(.+)", line)
            assert match, f"{path}: malformed skip {line.strip()!r}"
            assert len(match.group(2).split()) >= 8, f"{path}: {match.group(1)} needs a reason"
    assert skips > 0


# --- formatting ----------------------------------------------------------------------------------


def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.fail(
            "the terraform binary is not on PATH: install Terraform >= 1.11 to run "
            "`terraform fmt -check -recursive terraform` (no providers are needed)"
        )
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull},
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt found changes:\n{result.stdout}{result.stderr}"


# --- from the review against the google provider's schema (issue 11) ----------------------------


def test_a_grown_disk_never_plans_a_replacement(modules: dict[str, Config]) -> None:
    instance = modules["cloud_sql"].resource("google_sql_database_instance", "ledger")
    assert one(instance, "settings")["disk_autoresize"] is True
    assert one(instance, "lifecycle")["ignore_changes"] == ["${settings[0].disk_size}"]


def test_pubsub_names_carry_the_environment_prefix(
    environments: dict[str, Environment], modules: dict[str, Config]
) -> None:
    names = {}
    for name, env in environments.items():
        topic = env.value(env.modules["pubsub"]["topic_name"])
        assert topic == f"arus-{name}-ledger-events", (name, topic)
        names[name] = topic
    assert len(set(names.values())) == len(names), "dev and prod in one project must not collide"
    pubsub = modules["pubsub"]
    for kind in ("google_pubsub_topic", "google_pubsub_subscription"):
        for resource, body in pubsub.resources_of(kind).items():
            assert body["name"].startswith("${var.topic_name}"), (kind, resource, body["name"])


def test_the_service_agent_grant_is_recreated_with_its_subscription(
    modules: dict[str, Config],
) -> None:
    grant = modules["pubsub"].resource(
        "google_pubsub_subscription_iam_member", "example_subscriber"
    )
    # The subscription's id changes only when it is replaced; naming the resource itself would
    # also replace the grant on every in-place update of the subscription (issue 16, item 7).
    assert one(grant, "lifecycle")["replace_triggered_by"] == [
        "${google_pubsub_subscription.example.id}"
    ]


def test_the_stack_enables_its_apis_before_any_module(environments: dict[str, Environment]) -> None:
    stack = next(iter(environments.values())).stack
    services = stack.resource("google_project_service", "enabled")
    assert services["for_each"] == "${local.services}" and services["disable_on_destroy"] is False
    text = str(stack.locals["services"])
    for api in ("sqladmin", "secretmanager", "pubsub", "run", "cloudfunctions",
                "cloudscheduler", "cloudbuild", "artifactregistry", "iam"):  # fmt: skip
        assert f"{api}.googleapis.com" in text, api
    for name, call in stack.modules.items():
        assert "time_sleep.apis_enabled" in str(call.get("depends_on")), name


def test_the_instance_is_labelled_and_prod_keeps_backups_on_delete(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    settings = one(
        modules["cloud_sql"].resource("google_sql_database_instance", "ledger"), "settings"
    )
    assert settings["user_labels"] == "${var.labels}"
    assert settings["retain_backups_on_delete"] == "${var.retain_backups_on_delete}"
    for name, env in environments.items():
        labels = env.value(env.modules["cloud_sql"]["labels"])
        assert "arus" in str(labels) and "environment" in str(labels), (name, labels)
        retain = env.value(env.modules["cloud_sql"]["retain_backups_on_delete"])
        assert retain is (name == "prod"), (name, retain)


def test_write_only_arguments_have_the_versions_they_need(everything: list[Config]) -> None:
    for config in everything:
        uses_write_only = (
            "_wo " in config.text or "_wo=" in config.text or "ephemeral" in config.text
        )
        for block in config.terraform:
            required = str(block.get("required_version", ""))
            if uses_write_only:
                assert required.startswith(">= 1.11"), (config.path, required)
            for providers in block.get("required_providers", []):
                google = providers.get("google")
                if google is not None and uses_write_only:
                    assert re.search(r"6\.(2[3-9]|[3-9]\d)", str(google["version"])), (
                        config.path, google["version"],
                    )  # fmt: skip


# --- issue 16: one login per job (SPEC §3.6) ----------------------------------------------------


RUNBOOK = REPO / "docs" / "runbook-cloud-run.md"


def runbook_section(heading: str) -> str:
    """The text of the runbook from `heading` to the next heading of the same or a higher level."""
    text = RUNBOOK.read_text()
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    following = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return heading + "\n" + (rest[: following.start()] if following else rest)


def test_each_job_has_its_own_login_and_reads_only_its_own_secret(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Three roles, one login each; every function connects as its role's login (ARUS_DB_USER)
    with that login's password, and its account may read that one secret."""
    stack = next(iter(environments.values())).stack
    logins = stack.locals["db_logins"]
    assert set(logins) == set(DB_ROLES)
    for role, (group, functions) in DB_ROLES.items():
        assert logins[role]["group"] == group, role
        assert set(logins[role]["functions"]) == functions, role
    users = [login["user"] for login in logins.values()]
    assert len(set(users)) == len(users), users
    forbidden = {LEGACY_APP_USER, "arus", *(group for group, _ in DB_ROLES.values())}
    assert not set(users) & forbidden, users  # a login is none of the old user, owner or groups
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", user) for user in users), users
    # The functions of the three roles are the four functions, each exactly once.
    assigned = [f for login in logins.values() for f in login["functions"]]
    assert sorted(assigned) == sorted(FUNCTIONS), assigned
    assert "login.functions : name => role" in stack.locals["function_db_roles"]

    # One secret per login, named after its role.
    secrets = stack.modules["db_login_secrets"]
    assert secrets["source"] == "../secrets"
    assert secrets["for_each"] == "${local.db_logins}"
    assert secrets["secret_name"] == "db-${each.key}-password"

    # Each function's login and password come from its role's entry.
    functions = modules["functions"]
    plain = _function_environment(functions)
    assert plain["ARUS_DB_USER"] == "${var.db_logins[var.function_db_roles[each.key]].user}"
    assert "ARUS_DB_USER" not in functions.locals["environment_variables"]
    secret = one(service_config(functions), "secret_environment_variables")
    assert secret["secret"].startswith("${var.db_logins[var.function_db_roles[each.key]]")
    for name, env in environments.items():
        wired = env.modules["functions"]
        assert wired["function_db_roles"] == "${local.function_db_roles}", name
        flat = re.sub(r"\s+", " ", wired["db_logins"])
        assert "for role, login in local.db_logins" in flat, name
        assert "user = login.user" in flat, name
        assert "password_secret_id = module.db_login_secrets[role].secret_id" in flat, name
        assert "password_secret_version = module.db_login_secrets[role].served_version" in flat
        # The function's account may read its own role's secret: same map, same module.
        grants = re.sub(r"\s+", " ", env.modules["iam"]["function_db_password_secrets"])
        assert "for name, role in local.function_db_roles" in grants, name
        assert "module.db_login_secrets[role].secret_name" in grants, name
        # The owner's secret reaches no function and no grant.
        assert "module.secrets." not in str(wired) + str(env.modules["iam"]), name
        assert "module.app_secrets" not in str(env.modules), name
        assert set(env.root.outputs) >= {"database_logins", "database_owner"}, name
        assert not {"database_user", "db_password_secret"} & set(env.root.outputs), name
    output = re.sub(r"\s+", " ", stack.outputs["database_logins"]["value"])
    assert "for role, login in local.db_logins" in output
    assert "module.db_login_secrets[role].secret_name" in output


def test_no_runtime_login_is_a_cloud_sql_user_and_the_old_shared_user_is_removed_last(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Issue 16, item 7: on PostgreSQL 16+ the owner cannot strip a user the Cloud SQL Admin
    API made (REVOKE and ALTER ROLE need ADMIN OPTION), so Terraform makes no runtime user
    there: the owner creates each login in SQL. The old API-made shared user is forgotten by
    Terraform (never destroyed under a running function) and deleted last by the runbook."""
    sql = modules["cloud_sql"]
    versions = str(sql.variables["database_version"]["validation"])
    admitted = set(re.findall(r"POSTGRES_(\d+)", versions))
    assert admitted and all(int(v) >= 16 for v in admitted), admitted
    users = sql.resources_of("google_sql_user")
    assert set(users) == {"ledger"}, f"only the owner is a Cloud SQL user, not {set(users)}"
    assert users["ledger"]["name"] == "${var.user_name}"
    forgotten = {block["from"]: block for block in sql.removed}
    assert set(forgotten) == {"${google_sql_user.app}"}, forgotten
    assert one(forgotten["${google_sql_user.app}"], "lifecycle")["destroy"] is False
    for name in ("app_user_name", "app_user_password", "app_user_via_api"):
        assert name not in sql.variables, name
    everything = "".join(p.read_text() for p in TERRAFORM.rglob("*.tf"))
    assert "db_app_user_via_api" not in everything and "app_user_via_api" not in everything

    # The old secret and its grants are forgotten too, not destroyed.
    stack = next(iter(environments.values())).stack
    assert [(b["from"], one(b, "lifecycle")["destroy"]) for b in stack.removed] == [
        ("${module.app_secrets}", False)
    ]
    assert [(b["from"], one(b, "lifecycle")["destroy"]) for b in modules["iam"].removed] == [
        ("${google_secret_manager_secret_iam_member.db_password_accessor}", False)
    ]

    # The runbook's upgrade: migrate, the secrets alone, each login made and stripped, then the
    # functions moved, and only then the shared user deleted (by the Admin API).
    upgrade = runbook_section("### Upgrading to one login per job")
    steps = [
        "arus migrate",
        "terraform apply -target=module.arus.module.db_login_secrets",
        "arus app-user arus_api_login --role api --password-env",
        "arus app-user arus_relay_login --role relay --password-env",
        "arus app-user arus_close_login --role close --password-env",
        "Then `terraform apply`",
        "pg_stat_activity",
        f"gcloud sql users delete {LEGACY_APP_USER}",
        "gcloud secrets delete arus-dev-db-app-password",
    ]
    where = [upgrade.find(step) for step in steps]
    assert -1 not in where, [s for s, w in zip(steps, where, strict=True) if w == -1]
    assert where == sorted(where), f"out of order: {list(zip(steps, where, strict=True))}"
    for role, login in stack.locals["db_logins"].items():
        assert f"arus app-user {login['user']} --role {role} --password-env" in upgrade, role
        assert f"arus-dev-db-{role}-password" in upgrade, role


def test_functions_read_a_new_login_password_only_once_the_database_has_it(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Issue 16, item 7: the application user's name was output without a reference to its
    user resource, so the functions could move to a new secret version before the password
    changed. Now a login's password is set in SQL by the owner, so its functions read version
    `served`, which the operator raises only after `arus app-user` has set `generated`."""
    secrets = modules["secrets"]
    served = secrets.variables["served_version"]
    assert served["default"] is None
    rule = str(served["validation"])
    assert "var.password_version - 1" in rule and "<= var.password_version" in rule
    output = secrets.outputs["served_version"]["value"]
    # Both branches depend on the version resource, so no reader precedes the version.
    assert output.count("google_secret_manager_secret_version.db_password.version") == 1
    assert "tostring(var.served_version)" in output
    assert "var.served_version == var.password_version" in output
    version = secrets.resource("google_secret_manager_secret_version", "db_password")
    # A login's previous version stays readable while its functions still read it.
    assert version["deletion_policy"] == '${var.served_version == null ? "DISABLE" : "ABANDON"}'
    lifecycle = one(version, "lifecycle")
    assert lifecycle["create_before_destroy"] is True
    postcondition = one(lifecycle, "postcondition")["condition"]
    assert "self.version == tostring(var.password_version)" in postcondition

    stack = next(iter(environments.values())).stack
    call = stack.modules["db_login_secrets"]
    assert call["password_version"] == "${var.db_login_password_versions[each.key].generated}"
    assert call["served_version"] == "${var.db_login_password_versions[each.key].served}"
    assert "served_version" not in stack.modules["secrets"], "the owner's user moves with it"
    versions = stack.variables["db_login_password_versions"]
    assert "versions.served <= versions.generated" in str(versions["validation"])
    assert "versions.generated - 1" in str(versions["validation"])
    flat = re.sub(r"\s+", " ", stack.modules["functions"]["db_logins"])
    assert "module.db_login_secrets[role].served_version" in flat
    assert "module.db_login_secrets[role].secret_version" not in flat


def test_the_owner_user_takes_its_password_only_after_the_secret_holds_it(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Issue 16, item 7: a failed apply between the secret and the user leaves them apart. The
    user's password version is read from the stored secret version, so the only possible split
    is the secret ahead of the user, and the runbook says how to recover from it."""
    secrets = modules["secrets"]
    assert secrets.outputs["password_version"]["value"] == (
        "${google_secret_manager_secret_version.db_password.secret_data_wo_version}"
    )
    for name, env in environments.items():
        sql = env.modules["cloud_sql"]
        assert sql["user_password_version"] == "${module.secrets.password_version}", name
        assert sql["user_password"] == "${module.secrets.password}", name
    user = modules["cloud_sql"].resource("google_sql_user", "ledger")
    assert user["password_wo_version"] == "${var.user_password_version}"

    rotation = runbook_section("## 7. Rotate a database password")
    recovery = rotation[rotation.index("**If an owner rotation fails between the secret and") :]
    assert "Do not simply re-run `terraform apply`" in recovery
    assert "Raise `db_owner_password_version` once more" in recovery
    assert "gcloud sql users set-password arus" in recovery
    # A login's rotation: each step's failure has its recovery.
    assert "If a step fails: after 1" in rotation and "After 3" in rotation


def test_password_versions_are_kept_in_committed_tfvars_not_passed_with_var(
    environments: dict[str, Environment],
) -> None:
    """Issue 16, item 7: a rotation passed with -var is undone by the next apply without it."""
    for name, env in environments.items():
        directory = TERRAFORM / "environments" / name
        path = directory / "password_versions.auto.tfvars"
        assert path.is_file(), path
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(path)], cwd=REPO, check=False, capture_output=True
        )
        assert ignored.returncode == 1, f"{path} is git-ignored: it must be committed"
        for variable in ("db_owner_password_version", "db_login_password_versions"):
            # No default to fall back on: the committed file is the only source.
            assert "default" not in env.root.variables[variable], (name, variable)
            assert variable in env.values, (name, variable)
            assert env.call[variable] == f"${{var.{variable}}}", (name, variable)
        assert isinstance(env.values["db_owner_password_version"], int), name
        versions = env.values["db_login_password_versions"]
        assert set(versions) == set(DB_ROLES), name
        for role, pair in versions.items():
            assert set(pair) == {"generated", "served"}, (name, role)
            assert pair["generated"] - 1 <= pair["served"] <= pair["generated"], (name, role)
        assert not list(directory.glob("*.tfvars.json")), name
    text = RUNBOOK.read_text()
    assert not re.search(r"-var[ =]+\S*(password|_version)", text), "rotate in the tfvars file"
    assert "password_versions.auto.tfvars" in runbook_section("## 7. Rotate a database password")


def test_functions_wait_for_the_apis_and_for_iam_to_propagate(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Issue 16, item 7: time_sleep after enabling the APIs and after the IAM grants, before the
    functions are deployed."""

    def seconds(duration: str) -> int:
        match = re.fullmatch(r"(\d+)s", duration)
        assert match, duration
        return int(match.group(1))

    stack = next(iter(environments.values())).stack
    apis = stack.resource("time_sleep", "apis_enabled")
    assert apis["depends_on"] == ["${google_project_service.enabled}"]
    assert seconds(apis["create_duration"]) >= 60
    assert "local.services" in str(apis["triggers"]), "a newly enabled API is waited for too"
    iam = stack.resource("time_sleep", "iam_propagated")
    assert iam["depends_on"] == ["${module.iam}"]
    assert seconds(iam["create_duration"]) >= 60
    assert "module.iam.grant_ids" in str(iam["triggers"]), "a replaced grant is waited for too"
    assert "${time_sleep.iam_propagated}" in stack.modules["functions"]["depends_on"]
    for name, call in stack.modules.items():
        assert "${time_sleep.apis_enabled}" in call["depends_on"], name

    # Every grant the iam module makes is in grant_ids, so the wait covers it.
    iam_module = modules["iam"]
    grant_ids = iam_module.outputs["grant_ids"]["value"]
    for (kind, name), _ in iam_module.resources.items():
        if kind.endswith("_iam_member"):
            assert f"{kind}.{name}" in grant_ids, (kind, name)

    # Inside the functions module, the builds wait for the build account's own grants.
    functions = modules["functions"]
    build = functions.resource("time_sleep", "build_grants_propagated")
    assert seconds(functions.variables["iam_propagation_wait"]["default"]) >= 60
    assert build["create_duration"] == "${var.iam_propagation_wait}"
    triggers = str(build["triggers"])
    for (kind, name), _ in functions.resources.items():
        if kind.endswith("_iam_member") and name != "public_invoker":
            assert f"{kind}.{name}" in triggers, (kind, name)
    function = functions.resource("google_cloudfunctions2_function", "function")
    assert function["depends_on"] == ["${time_sleep.build_grants_propagated}"]
    for config in (stack, functions):
        (block,) = config.terraform
        (providers,) = block["required_providers"]
        assert providers["time"]["source"] == "hashicorp/time", config.path


def test_the_pubsub_service_agent_comes_from_a_project_number_passed_in(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Issue 16, item 7: a data.google_project inside a module called with depends_on is read
    only at apply time, so the service agent's member was unknown and both grants planned for
    replacement. The stack reads the project once, with no depends_on, and passes its number."""
    pubsub = modules["pubsub"]
    assert not pubsub.data, pubsub.data
    assert "var.project_number" in pubsub.locals["pubsub_service_agent"]
    assert "validation" in pubsub.variables["project_number"]
    stack = next(iter(environments.values())).stack
    project = stack.data[("google_project", "this")]
    assert "depends_on" not in project and project["project_id"] == "${var.project_id}"
    assert stack.modules["pubsub"]["project_number"] == "${data.google_project.this.number}"
    # The stack calls every module with depends_on, so none may read a data source.
    assert all("depends_on" in call for call in stack.modules.values())
    for config in modules.values():
        assert not config.data, f"{config.path} reads {set(config.data)} under depends_on"


def test_a_destroyed_dev_instance_can_be_re_created_at_once(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    """Issue 16, item 7: Cloud SQL keeps a deleted instance's name for up to a week; dev's name
    carries a random suffix drawn again after a destroy. prod keeps its name."""
    sql = modules["cloud_sql"]
    suffix = sql.resource("random_id", "instance_suffix")
    assert suffix["count"] == "${var.unique_name ? 1 : 0}"
    assert suffix["byte_length"] >= 2
    assert "random_id.instance_suffix" in sql.locals["instance_name"]
    instance = sql.resource("google_sql_database_instance", "ledger")
    assert instance["name"] == "${local.instance_name}"
    assert "default" not in sql.variables["unique_name"], "each environment decides"
    (block,) = sql.terraform
    (providers,) = block["required_providers"]
    assert providers["random"]["source"] == "hashicorp/random"
    unique = {name: env.value(env.modules["cloud_sql"]["unique_name"]) for name, env in
              environments.items()}  # fmt: skip
    assert unique == {"dev": True, "prod": False}, unique


def test_runbook_states_the_terraform_version_and_what_state_holds(
    everything: list[Config],
) -> None:
    """Issue 16, item 7: Terraform >= 1.11 everywhere (ephemeral values, write-only arguments,
    removed blocks), and no claim that state holds the password (it holds none)."""
    for config in everything:
        for block in config.terraform:
            assert block.get("required_version") == ">= 1.11", config.path
    text = RUNBOOK.read_text()
    assert "Terraform >= 1.11" in text and "Terraform >= 1.6" not in text
    claims = re.compile(
        r"state\s+(holds|contains|keeps|stores)\s+the\s+(generated\s+)?(database\s+)?password",
        re.IGNORECASE,
    )
    for path in [RUNBOOK, *TERRAFORM.rglob("*.tf"), TERRAFORM / "README.md"]:
        assert not claims.search(path.read_text()), path
    assert "Terraform state holds no password" in text
    for env in ENVIRONMENTS:
        versions = (TERRAFORM / "environments" / env / "versions.tf").read_text()
        assert "It holds no\n  # password" in versions, env


# --- issue 16, item 7: provider 6.31 and the committed lock files -------------------------------


VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _constraint_terms(constraint: str) -> list[tuple[str, tuple[int, int, int], int]]:
    """`>= 6.31, < 7.0` -> [(">=", (6, 31, 0), 2), ("<", (7, 0, 0), 2)]: operator, version,
    how many parts were written (which is what `~>` depends on)."""
    terms = []
    for term in constraint.split(","):
        match = re.fullmatch(r"\s*(>=|<=|~>|>|<|=|!=)?\s*(\S+)\s*", term)
        assert match, constraint
        parts = VERSION.fullmatch(match.group(2))
        assert parts, constraint
        written = 3 if parts.group(3) is not None else 2
        number = (int(parts.group(1)), int(parts.group(2)), int(parts.group(3) or 0))
        terms.append((match.group(1) or "=", number, written))
    return terms


def _satisfies(version: tuple[int, int, int], constraint: str) -> bool:
    for operator, bound, written in _constraint_terms(constraint):
        if operator == "~>":
            upper = (bound[0] + 1, 0, 0) if written == 2 else (bound[0], bound[1] + 1, 0)
            ok = bound <= version < upper
        else:
            ok = {
                ">=": version >= bound, ">": version > bound, "<=": version <= bound,
                "<": version < bound, "=": version == bound, "!=": version != bound,
            }[operator]  # fmt: skip
        if not ok:
            return False
    return True


def _canonical(constraints: list[str]) -> str:
    """What Terraform writes in a lock file for these constraints: deduplicated, versions in
    full (but `~> X.Y` as written), sorted by version, then by operator (>=, ~>, <)."""
    priority = {">": 1, ">=": 2, "=": 3, "~>3": 4, "~>2": 5, "<=": 6, "<": 7, "!=": 8}
    terms = {
        (bound, priority[f"~>{written}" if op == "~>" else op], op, written)
        for constraint in constraints
        for op, bound, written in _constraint_terms(constraint)
    }

    def text(op: str, bound: tuple[int, int, int], written: int) -> str:
        shown = ".".join(map(str, bound[:2] if op == "~>" and written == 2 else bound))
        return shown if op == "=" else f"{op} {shown}"

    return ", ".join(text(op, bound, written) for bound, _, op, written in sorted(terms))


def _required_providers(config: Config) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for block in config.terraform:
        for providers in block.get("required_providers", []):
            found.update(providers)
    return found


def test_every_module_requires_the_google_provider_that_has_retain_backups_on_delete(
    everything: list[Config],
) -> None:
    """settings.retain_backups_on_delete first exists in hashicorp/google 6.31: every
    constraint must exclude the versions before it (and 7.0, which changes the schema)."""
    for config in everything:
        google = _required_providers(config).get("google")
        assert google is not None, f"{config.path} pins no google provider"
        assert not _satisfies((6, 30, 9), google["version"]), (config.path, google["version"])
        assert _satisfies((6, 31, 0), google["version"]), (config.path, google["version"])
        assert not _satisfies((7, 0, 0), google["version"]), (config.path, google["version"])


def test_each_environment_commits_a_lock_file_that_pins_versions_its_modules_accept(
    modules: dict[str, Config], stack: Config, environments: dict[str, Environment]
) -> None:
    tree = [*modules.values(), stack]
    for name, env in environments.items():
        path = TERRAFORM / "environments" / name / ".terraform.lock.hcl"
        assert path.is_file(), f"{path}: commit the lock file"
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(path)], cwd=REPO, check=False, capture_output=True
        )
        assert ignored.returncode == 1, f"{path} is git-ignored"
        locked = {}
        for block in _parse(path)["provider"]:
            for address, body in block.items():
                locked[address] = body
        required = _required_providers(env.root)
        sources = {f"registry.terraform.io/{p['source']}" for p in required.values()}
        assert set(locked) == sources, (name, set(locked))
        for local_name, requirement in required.items():
            address = f"registry.terraform.io/{requirement['source']}"
            version = VERSION.fullmatch(locked[address]["version"])
            assert version and version.group(3) is not None, (name, address)
            number = (int(version.group(1)), int(version.group(2)), int(version.group(3)))
            constraints = [requirement["version"]] + [
                p[local_name]["version"]
                for config in tree
                if local_name in (p := _required_providers(config))
            ]
            for constraint in constraints:
                assert _satisfies(number, constraint), (name, address, constraint)
            assert locked[address]["constraints"] == _canonical(constraints), (name, address)
            # No invented hash: either real ones (from `terraform providers lock`) or none yet.
            for entry in locked[address].get("hashes", []):
                assert re.fullmatch(r"h1:[A-Za-z0-9+/]{43}=|zh:[0-9a-f]{64}", entry), entry
        assert number  # the loop ran
    assert locked["registry.terraform.io/hashicorp/google"]["version"].startswith("6.")


def test_terraform_init_reads_each_lock_file_offline(tmp_path: Path) -> None:
    """`terraform init` against an empty plugin directory downloads nothing, but parses the lock
    file (canonical form required) and checks each locked version against every constraint of
    the configuration before it looks for the providers themselves."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.fail("the terraform binary is not on PATH: install Terraform >= 1.11")
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    plugins = tmp_path / "no-plugins"
    plugins.mkdir()
    for name in ENVIRONMENTS:
        result = subprocess.run(
            [terraform, "init", "-backend=false", "-input=false", "-no-color",
             "-lockfile=readonly", f"-plugin-dir={plugins}"],
            cwd=copy / "environments" / name,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull},
            check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        for provider in ("google", "random", "time"):
            assert (
                f"Reusing previous version of hashicorp/{provider} from the dependency lock file"
                in output
            ), f"{name}: {output}"
        for refusal in ("Invalid", "does not match", "inconsistent", "Unsupported"):
            assert refusal not in output, f"{name}: {output}"
        # It stops only where it would need the providers' packages.
        assert re.search(r"was not\s+found\s+in\s+any\s+of\s+the\s+search", output), output


# --- monitoring (issue 19, item 6: ADR-010) ------------------------------------------------------

ALERTS = {"outbox_lag", "relay_silent", "entries_stalled", "api_errors"}
# Each log-based metric: the function whose lines it reads, the line's message, and the field.
LOG_METRICS = {
    "outbox_lag": ("relay", "relay run", "outbox_lag_s"),
    "entries_written": ("post_entry", "engine call", "engine_call.entries_written"),
}


def test_log_based_metrics_read_fields_the_code_writes(modules: dict[str, Config]) -> None:
    monitoring = modules["monitoring"]
    metrics = monitoring.resources_of("google_logging_metric")
    assert set(metrics) == set(LOG_METRICS)
    sources = {
        "relay run": (REPO / "shared/arus/outbox/relay.py").read_text(),
        "engine call": (REPO / "shared/arus/platform/telemetry.py").read_text(),
    }
    for name, (function, message, field_path) in LOG_METRICS.items():
        metric = metrics[name]
        descriptor = one(metric, "metric_descriptor")
        # A distribution: its count is lines (runs, engine calls), its sum the figure.
        assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "DISTRIBUTION")
        assert metric["value_extractor"] == f"EXTRACT(jsonPayload.{field_path})", name
        assert one(metric, "bucket_options")["exponential_buckets"], name
        # Only its function's lines, only the line that carries the field (never null there).
        assert f'var.service_names["{function}"]' in metric["filter"], name
        assert f'jsonPayload.message=\\"{message}\\"' in metric["filter"], name
        assert f"jsonPayload.{field_path}>=0" in metric["filter"], name
        assert metric["name"].startswith("${local.metric_prefix}_"), name
        # The code writes that line with that field.
        source = sources[message]
        assert f'"{message}"' in source, (name, message)
        assert f'"{field_path.split(".")[-1]}"' in source, (name, field_path)


def test_alerts_cover_lag_a_silent_relay_stalled_writes_and_5xx(
    modules: dict[str, Config],
) -> None:
    monitoring = modules["monitoring"]
    policies = monitoring.resources_of("google_monitoring_alert_policy")
    assert set(policies) == ALERTS
    for name, policy in policies.items():
        assert policy["notification_channels"] == "${var.alerts.notification_channels}", name
        assert policy["display_name"].startswith("${var.name_prefix}: "), name
        assert "${local.runbook}" in one(policy, "documentation")["content"], name
    assert "docs/operations.md" in monitoring.locals["runbook"]
    lag_metric = "logging.googleapis.com/user/${google_logging_metric.outbox_lag.name}"

    lag = one(one(policies["outbox_lag"], "conditions"), "condition_threshold")
    assert lag_metric in lag["filter"]
    assert lag["comparison"] == "COMPARISON_GT"
    assert lag["threshold_value"] == "${var.alerts.outbox_lag_threshold_s}"
    assert one(lag, "aggregations")["per_series_aligner"] == "ALIGN_PERCENTILE_99"

    # The relay runs every minute (modules/scheduler): ten minutes without a line is silence.
    silent = one(one(policies["relay_silent"], "conditions"), "condition_absent")
    assert lag_metric in silent["filter"] and silent["duration"] == "600s"

    # Calls arrive (the distribution's count) while none writes an entry (its sum is 0).
    stalled = one(
        one(policies["entries_stalled"], "conditions"), "condition_prometheus_query_language"
    )
    query = re.sub(r"\s+", " ", stalled["query"].removeprefix("<<-EOT").removesuffix("EOT")).strip()
    prom = monitoring.locals["entries_written"]
    assert prom == "logging_googleapis_com:user_${google_logging_metric.entries_written.name}"
    assert "sum(rate(${local.entries_written}_count" in query and ") > 0 and sum(" in query
    assert "sum(rate(${local.entries_written}_sum" in query and query.endswith("== 0")
    assert "replace(var.name_prefix" in monitoring.locals["metric_prefix"]  # PromQL: no hyphens

    errors = one(one(policies["api_errors"], "conditions"), "condition_threshold")
    for key in ("filter", "denominator_filter"):
        assert "run.googleapis.com/request_count" in errors[key], key
        for function in PUBLIC_FUNCTIONS:
            assert f'var.service_names["{function}"]' in errors[key], (key, function)
    assert 'response_code_class="5xx"' in errors["filter"]
    assert "response_code_class" not in errors["denominator_filter"]
    assert errors["threshold_value"] == "${var.alerts.api_5xx_ratio}"


def test_each_environment_sets_its_alerts_and_the_stack_wires_the_service_names(
    environments: dict[str, Environment],
) -> None:
    thresholds = {}
    for name, env in environments.items():
        call = env.modules["monitoring"]
        assert call["service_names"] == "${module.functions.service_names}", name
        assert env.value(call["name_prefix"]) == f"arus-{name}", name
        alerts = env.value(call["alerts"])
        assert alerts["outbox_lag_threshold_s"] > 0 and 0 < alerts["api_5xx_ratio"] < 1, name
        assert alerts["notification_channels"] == "${var.alert_notification_channels}", name
        assert env.root.variables["alert_notification_channels"]["default"] == [], name
        thresholds[name] = alerts["outbox_lag_threshold_s"]
    assert thresholds["prod"] <= thresholds["dev"], thresholds


def test_functions_export_traces_to_cloud_trace_of_their_project(
    modules: dict[str, Config], environments: dict[str, Environment]
) -> None:
    from arus.platform.config import load_settings

    plain = _function_environment(modules["functions"])
    assert plain["ARUS_TRACE_EXPORTER"] == "gcp"
    assert plain["ARUS_TRACE_PROJECT"] == "${var.project_id}"
    # What Terraform sets is what the settings accept (a typo would stop every function).
    settings = load_settings({"ARUS_TRACE_EXPORTER": "gcp", "ARUS_TRACE_PROJECT": "arus-prod-1"})
    assert settings.trace_exporter == "gcp"
    tracer = modules["iam"].resource("google_project_iam_member", "trace_agent")
    assert tracer["role"] == "roles/cloudtrace.agent"
    assert tracer["for_each"] == "${google_service_account.function}"
    for name, env in environments.items():
        assert "cloudtrace.googleapis.com" in env.stack.locals["services"], name


# --- placements: ledgers on several primaries (SPEC §9, issue 20 item 3) -------------------------


def test_placements_are_a_list_of_named_cloud_sql_placements(stack: Config) -> None:
    placements = stack.variables["placements"]
    assert "default" not in placements, "each environment states its placements"
    kind = re.sub(r"\s+", " ", placements["type"])
    assert kind == '${list(object({name = string, engine = optional(string, "cloudsql")}))}', kind
    rules = [rule["condition"] for rule in placements["validation"]]
    assert "${length(var.placements) >= 1}" in rules
    assert any("distinct([for placement in var.placements : placement.name])" in r for r in rules)
    named = next(r for r in rules if "regex(" in r)
    pattern = re.search(r'regex\("(.+?)", placement\.name\)', named)
    assert pattern, named
    from arus.platform.config import PLACEMENT_NAME

    accepted = re.compile(pattern.group(1).replace("\\\\", "\\"))
    for name in ("main", "west", "eu-1", "a" * 31):
        assert accepted.fullmatch(name) and re.fullmatch(PLACEMENT_NAME, name), name
    for name in ("Main", "1st", "west-", "a" * 32, "a_b", ""):
        assert not accepted.fullmatch(name), name
    # AlloyDB is refused in so many words, not half-built.
    engines = next(r for r in rules if "placement.engine" in r)
    assert (
        engines == '${alltrue([for placement in var.placements : placement.engine == "cloudsql"])}'
    )


def test_each_placement_has_its_own_instance_and_main_keeps_the_old_one(
    modules: dict[str, Config], stack: Config
) -> None:
    sql = stack.modules["cloud_sql"]
    assert sql["for_each"] == "${local.placements}"
    placements = re.sub(r"\s+", " ", stack.locals["placements"])
    assert placements == "${{for placement in var.placements : placement.name => placement}}"
    assert sql["placement"] == "${each.key}"
    # The one instance of a deployment made before placements is main's, moved, not replaced.
    assert [(m["from"], m["to"]) for m in stack.moved] == [
        ("${module.cloud_sql}", '${module.cloud_sql["main"]}')
    ]
    # main keeps <prefix>-ledger; another placement's instance carries its name.
    base = modules["cloud_sql"].locals["base_name"]
    assert base == (
        '${var.placement == "main" ? "${var.name_prefix}-ledger" : '
        '"${var.name_prefix}-ledger-${var.placement}"}'
    ), base
    assert "local.base_name" in modules["cloud_sql"].locals["instance_name"]
    # Every instance has the owner, with the one owner secret; no other module is per placement.
    assert sql["user_password"] == "${module.secrets.password}"
    assert [name for name, call in stack.modules.items() if "for_each" in call and
            call["for_each"] == "${local.placements}"] == ["cloud_sql"]  # fmt: skip
    # Nothing reads the instance as a single module any more.
    text = re.sub(r"\s+", " ", stack.text)
    assert not re.search(r"module\.cloud_sql\.", text), "module.cloud_sql is per placement"


def test_every_function_is_given_every_placement(
    modules: dict[str, Config], stack: Config, environments: dict[str, Environment]
) -> None:
    from arus.platform.config import load_settings

    functions = modules["functions"]
    plain = _function_environment(functions)
    assert plain["ARUS_PLACEMENTS"] == "${local.arus_placements}"
    assert "ARUS_CLOUDSQL_INSTANCE" not in plain, "a placement's instance is in ARUS_PLACEMENTS"
    joined = functions.locals["arus_placements"]
    assert joined == (
        '${join(",", [for placement in var.placements : "${placement.name}=${placement.target}"])}'
    ), joined
    assert "cloudsql_connection_name" not in functions.variables
    wired = re.sub(r"\s+", " ", stack.modules["functions"]["placements"])
    assert wired == (
        "${[for placement in var.placements : {name = placement.name, "
        "target = module.cloud_sql[placement.name].connection_name}]}"
    ), wired
    # One database name on every placement (ARUS_DB_NAME is one setting).
    assert stack.modules["functions"]["db_name"] == (
        "${one(distinct([for sql in module.cloud_sql : sql.database_name]))}"
    )
    for name, env in environments.items():
        # What the join makes of the environment's placements is what the settings read: every
        # placement, by name, each a Cloud SQL connection name through the connector.
        placements = env.value("${var.placements}")
        targets = [(p["name"], f"{name}-project:us-central1:arus-{name}-ledger-{p['name']}")
                   for p in placements]  # fmt: skip
        settings = load_settings({"ARUS_PLACEMENTS": ",".join(f"{n}={t}" for n, t in targets)})
        assert settings.placement_names == tuple(p["name"] for p in placements), name
        for placement, target in targets:
            assert settings.for_placement(placement).cloudsql_instance == target, name
    # The operator's copy is the functions' own value.
    assert stack.outputs["arus_placements"]["value"] == "${module.functions.arus_placements}"
    assert functions.outputs["arus_placements"]["value"] == "${local.arus_placements}"


def test_every_function_may_connect_to_every_placements_instance_only(
    modules: dict[str, Config], stack: Config
) -> None:
    iam = modules["iam"]
    wired = re.sub(r"\s+", " ", stack.modules["iam"]["sql_instance_names"])
    assert wired == (
        "${[for placement in var.placements : module.cloud_sql[placement.name].instance_name]}"
    ), wired
    assert "sql_instance_name" not in iam.variables
    names = iam.locals["ledger_instance_names"]
    assert names == (
        "${[for name in var.sql_instance_names : "
        '"resource.name == \\"projects/${var.project_id}/instances/${name}\\""]}'
    ), names
    condition = iam.locals["ledger_instance_condition"]
    # One instance: the very condition of before placements; several: any one of them.
    assert "length(local.ledger_instance_names) == 1 ? local.ledger_instance_names[0]" in condition
    assert '"(${join(" || ", local.ledger_instance_names)})"' in condition
    grant = iam.resource("google_project_iam_member", "cloudsql_client")
    assert one(grant, "condition")["expression"] == "${local.ledger_instance_condition}"
    assert one(grant, "condition")["title"] == "${local.ledger_instance_title}"
    assert '"only-${var.sql_instance_names[0]}"' in iam.locals["ledger_instance_title"]
    # A placement added replaces the grant: never a moment without it.
    assert one(grant, "lifecycle")["create_before_destroy"] is True
    # The connector needs no network of its own: every instance has the same public,
    # connector-only, client-certificate configuration (one module, one ip_configuration).
    network = one(one(modules["cloud_sql"].resource("google_sql_database_instance", "ledger"),
                      "settings"), "ip_configuration")  # fmt: skip
    assert "authorized_networks" not in network
    assert stack.modules["functions"]["db_ip_type"] == "public"


def test_dev_has_exactly_one_placement_main_and_prod_keeps_main(
    environments: dict[str, Environment],
) -> None:
    for name, env in environments.items():
        assert env.call["placements"] == "${local.placements}", name
        placements = env.value("${var.placements}")
        assert placements[0] == {"name": "main", "engine": "cloudsql"}, (name, placements)
        assert "placements" not in env.root.variables, f"{name}: placements are committed"
        assert set(env.root.outputs) >= {"placements", "arus_placements"}, name
    assert environments["dev"].value("${var.placements}") == [
        {"name": "main", "engine": "cloudsql"}
    ]


def test_runbook_adds_a_placement_with_its_migrate_and_app_user_steps() -> None:
    section = runbook_section("### Adding a placement")
    variable = "ARUS_LOGIN_PASSWORD"
    steps = [
        "local.placements",
        "terraform apply",
        'export ARUS_PLACEMENTS="$(terraform output -raw arus_placements)"',
        "arus migrate",
        *(
            f"arus app-user {user} --role {role} --password-env {variable} --placement west"
            for role, user in (
                ("api", "arus_api_login"),
                ("relay", "arus_relay_login"),
                ("close", "arus_close_login"),
            )
        ),
        "arus ledger create books --placement west",
    ]
    where = [section.find(step) for step in steps]
    assert -1 not in where, [s for s, w in zip(steps, where, strict=True) if w == -1]
    assert where == sorted(where), f"out of order: {list(zip(steps, where, strict=True))}"
    rotation = runbook_section("## 7. Rotate a database password")
    # A login's one secret is its password on every placement: served moves after all of them.
    assert "step 2\nruns on every placement" in rotation
    assert "`served` is raised only once every placement has\nthe new password" in rotation
    readme = (TERRAFORM / "README.md").read_text()
    assert "## Placements" in readme and "ARUS_PLACEMENTS" in readme
