"""The AWS actions each Lambda function can call, derived from the Rust sources.

No table is kept by hand. The chain is read from the code:

1. ``functions/<fn>/src/main.rs``: which step function the binary runs and which SDK adapters
   it hands to it (``aws.ecs``, ``aws.elb``, ``aws.ecr`` of ``AwsClients``, or an ``Sdk*``
   adapter it builds itself).
2. The port traits (``crates/bluegreen/src/ports.rs`` and any other ``pub trait`` an adapter
   implements) and their methods.
3. ``crates/bluegreen/src/steps/*.rs`` (and the rest of the library): which port methods the
   step calls, following calls into helper functions (``sides``, ``resolve_tag``, …) across
   modules.
4. The SDK adapters, every library file that does ``use aws_sdk_<service>::Client;`` (today
   ``crates/bluegreen/src/aws/{ecs,elb,ecr}.rs``): which SDK operations each adapter method
   sends (``self.client.describe_services()…send()``), following calls into the adapter's own
   helpers (``self.describe_task_definition(…)``), and which request fields imply further
   authorization (a ``*_role_arn`` field is ``iam:PassRole``; tags on a create or register
   call are the service's tag-on-create action).

Test code (``#[cfg(test)]`` items) is ignored. The derivation is strict: an SDK call in an
adapter that no port method reaches, a ``.send()`` that is not on ``self.client``, a use of
the ``client()`` escape hatch outside the adapters, SDK requests sent from a file that is not an
adapter, or a step calling a port whose adapter its binary does not pass, is an error rather
than a silent gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: SDK crate (``aws_sdk_<name>``) → IAM service prefix.
IAM_PREFIX = {
    "ecs": "ecs",
    "elasticloadbalancingv2": "elasticloadbalancing",
    "ecr": "ecr",
    "secretsmanager": "secretsmanager",
    "cloudwatch": "cloudwatch",
    "sfn": "states",
}

#: The action that authorizes tags given to a create call, per IAM prefix.
TAG_ON_CREATE = {
    "ecs": "ecs:TagResource",
    "elasticloadbalancing": "elasticloadbalancing:AddTags",
    "ecr": "ecr:TagResource",
    "secretsmanager": "secretsmanager:TagResource",
    "cloudwatch": "cloudwatch:TagResource",
    "states": "states:TagResource",
}

CREATE_VERBS = ("create_", "register_", "run_", "start_")


class DerivationError(Exception):
    """The sources are not in a shape the derivation can vouch for."""


# --------------------------------------------------------------------------------------------
# Lexing: comments, strings and char literals out, so braces and dots are structure only.


def strip_rust(src: str) -> str:
    """``src`` with comments removed and string/char literals emptied (``""``, ``' '``).

    Lifetimes (``'a``) stay. Line breaks are kept so offsets stay readable.
    """
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        nxt = src[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        out.append("\n")
                    i += 1
            continue
        m = re.match(r'b?r(#*)"', src[i:]) if c in "rb" and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")) else None
        if m:
            hashes = m.group(1)
            end = src.find('"' + hashes, i + m.end())
            if end < 0:
                raise DerivationError("unterminated raw string")
            out.append('""')
            out.append("\n" * src.count("\n", i, end))
            i = end + 1 + len(hashes)
            continue
        if c == '"' or (c == "b" and nxt == '"' and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_"))):
            i += 1 if c == '"' else 2
            start = i
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            out.append('""')
            out.append("\n" * src.count("\n", start, i))
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", src[i:])
            if m:
                out.append("' '")
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def matching_brace(code: str, open_at: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_at``."""
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise DerivationError("unbalanced braces")


def without_test_items(code: str) -> str:
    """``code`` without the items marked ``#[cfg(test)]`` (modules, functions, impls)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        brace = code.find("{", m.end())
        semi = code.find(";", m.end())
        if semi >= 0 and (brace < 0 or semi < brace):
            end = semi
        else:
            end = matching_brace(code, brace)
        code = code[: m.start()] + code[end + 1 :]


def fn_bodies(code: str) -> list[tuple[str, str]]:
    """``(name, body)`` of every ``fn name(…) … { body }`` in ``code`` (nested ones too)."""
    found = []
    for m in re.finditer(r"\bfn\s+([a-z_][a-z0-9_]*)\b", code):
        # The body starts at the first `{` after the signature; a `;` first means a
        # declaration without a body (trait method).
        j = m.end()
        depth = 0
        while j < len(code):
            ch = code[j]
            if ch in "(<[":
                depth += 1
            elif ch in ")>]":
                depth -= 1
            elif ch == ";" and depth <= 0:
                j = -1
                break
            elif ch == "{" and depth <= 0:
                break
            j += 1
        if j < 0 or j >= len(code):
            continue
        end = matching_brace(code, j)
        found.append((m.group(1), code[j + 1 : end]))
    return found


def impl_blocks(code: str) -> list[tuple[str | None, str, str]]:
    """``(trait or None, type, body)`` of every top-level ``impl`` block."""
    blocks = []
    for m in re.finditer(r"^impl(?:<[^>]*>)?\s+(?:(\w+)\s+for\s+)?(\w+)\s*\{", code, re.M):
        start = m.end() - 1
        blocks.append((m.group(1), m.group(2), code[start + 1 : matching_brace(code, start)]))
    return blocks


def read_code(path: Path) -> str:
    return without_test_items(strip_rust(path.read_text()))


def pascal(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


# --------------------------------------------------------------------------------------------
# Adapters: port method → SDK operations (and implied actions).


@dataclass
class SdkCall:
    operation: str  # snake_case SDK operation
    setters: list[str]  # request fields set on the fluent builder


@dataclass
class Adapter:
    file: Path
    sdk_crate: str
    struct: str
    trait: str
    #: port method → the IAM actions it needs, each with why (the SDK call it comes from).
    actions: dict[str, dict[str, str]] = field(default_factory=dict)
    #: every SDK operation sent in the file's non-test code.
    operations: set[str] = field(default_factory=set)


SDK_CALL = re.compile(r"self\s*\.\s*client\s*\.\s*([a-z_][a-z0-9_]*)\s*\(\s*\)")


def sdk_calls(body: str) -> list[SdkCall]:
    calls = []
    for m in SDK_CALL.finditer(body):
        send = re.search(r"\.\s*send\s*\(\s*\)", body[m.end() :])
        if not send:
            raise DerivationError(f"SDK call {m.group(1)} is never sent")
        chain = body[m.end() : m.end() + send.start()]
        setters = [s.removeprefix("set_") for s in re.findall(r"\.\s*([a-z_][a-z0-9_]*)\s*\(", chain)]
        calls.append(SdkCall(m.group(1), setters))
    return calls


def actions_of(call: SdkCall, prefix: str) -> dict[str, str]:
    why = f"{call.operation}()"
    acts = {f"{prefix}:{pascal(call.operation)}": why}
    if any(s.endswith("role_arn") for s in call.setters):
        acts["iam:PassRole"] = f"{why} passes {', '.join(s for s in call.setters if s.endswith('role_arn'))}"
    if "tags" in call.setters and call.operation.startswith(CREATE_VERBS):
        acts[TAG_ON_CREATE[prefix]] = f"{why} sets tags (tag-on-create authorization)"
    return acts


def analyze_adapter(path: Path) -> Adapter:
    code = read_code(path)
    m = re.search(r"use\s+aws_sdk_([a-z0-9]+)::Client\s*;", code)
    if not m:
        raise DerivationError(f"{path}: no `use aws_sdk_<service>::Client;`")
    crate = m.group(1)
    if crate not in IAM_PREFIX:
        raise DerivationError(f"{path}: SDK crate aws_sdk_{crate} has no IAM prefix in IAM_PREFIX")
    prefix = IAM_PREFIX[crate]
    blocks = impl_blocks(code)
    trait_impls = [(t, s, b) for t, s, b in blocks if t is not None]
    if len(trait_impls) != 1:
        raise DerivationError(f"{path}: expected exactly one `impl <Port> for <Adapter>`, found {len(trait_impls)}")
    trait, struct, trait_body = trait_impls[0]
    helpers: dict[str, str] = {}
    for t, s, b in blocks:
        if t is None and s == struct:
            helpers.update(fn_bodies(b))
    methods = dict(fn_bodies(trait_body))

    def reach(body: str, seen: frozenset[str]) -> dict[str, str]:
        acts: dict[str, str] = {}
        for call in sdk_calls(body):
            acts.update(actions_of(call, prefix))
        for h in re.findall(r"self\s*\.\s*([a-z_][a-z0-9_]*)\s*\(", body):
            if h in helpers and h not in seen:
                acts.update(reach(helpers[h], seen | {h}))
        return acts

    adapter = Adapter(path, crate, struct, trait)
    adapter.actions = {name: reach(body, frozenset()) for name, body in methods.items()}
    sent = len(re.findall(r"\.\s*send\s*\(\s*\)", code))
    calls = SDK_CALL.findall(code)
    if sent != len(calls):
        raise DerivationError(
            f"{path}: {sent} `.send()` but {len(calls)} `self.client.<op>()` calls; every SDK call must go through self.client"
        )
    adapter.operations = set(calls)
    reached = {a for acts in adapter.actions.values() for a in acts}
    for op in adapter.operations:
        if f"{prefix}:{pascal(op)}" not in reached:
            raise DerivationError(f"{path}: SDK operation {op} is called but no {trait} method reaches it")
    return adapter


# --------------------------------------------------------------------------------------------
# Ports and steps: which port methods a step entry point reaches.


def port_traits(path: Path) -> dict[str, set[str]]:
    """The `pub trait`s of a file and their method names."""
    code = read_code(path)
    traits = {}
    for m in re.finditer(r"pub\s+trait\s+(\w+)[^{;]*\{", code):
        body = code[m.end() : matching_brace(code, m.end() - 1)]
        traits[m.group(1)] = set(re.findall(r"\bfn\s+([a-z_][a-z0-9_]*)", body))
    return traits


@dataclass
class Module:
    path: str  # `steps::validate`
    fns: dict[str, list[str]]  # name → bodies
    imports: dict[str, str]  # name → module path


def module_path(src_root: Path, file: Path) -> str:
    rel = file.relative_to(src_root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


def library_modules(src_root: Path) -> dict[str, Module]:
    modules = {}
    for file in sorted(src_root.rglob("*.rs")):
        rel = file.relative_to(src_root)
        if rel.parts[0] == "aws" or file.name in ("fakes.rs", "lib.rs"):
            continue
        code = read_code(file)
        fns: dict[str, list[str]] = {}
        for name, body in fn_bodies(code):
            fns.setdefault(name, []).append(body)
        imports = {}
        for m in re.finditer(r"\buse\s+crate::([\w:]+?)(?:::\{([^}]*)\}|::(\w+))\s*;", code):
            base, group, single = m.group(1), m.group(2), m.group(3)
            if group is not None:
                for item in group.split(","):
                    item = item.strip()
                    if item and item != "self":
                        imports[item] = base
            else:
                imports[single] = base
        modules[module_path(src_root, file)] = Module(module_path(src_root, file), fns, imports)
    return modules


def port_calls(modules: dict[str, Module], start_module: str, start_fn: str, port_methods: set[str]) -> set[str]:
    """Port methods reached from ``start_module::start_fn``, following helper calls."""
    reached: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [(start_module, start_fn)]
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen:
            continue
        seen.add((mod, name))
        module = modules.get(mod)
        if module is None or name not in module.fns:
            continue
        for body in module.fns[name]:
            reached |= {m for m in re.findall(r"\.\s*([a-z_][a-z0-9_]*)\s*\(", body) if m in port_methods}
            for qual, callee in re.findall(r"\b((?:[a-z_][a-z0-9_]*::)*)([a-z_][a-z0-9_]*)\s*(?:::<[^>]*>)?\s*\(", body):
                if qual:
                    path = qual.rstrip(":").removeprefix("crate::")
                    parent = mod.rsplit("::", 1)[0] if "::" in mod else ""
                    for candidate in (path, f"{parent}::{path}" if parent else path, f"{mod}::{path}"):
                        if candidate in modules:
                            todo.append((candidate, callee))
                            break
                    continue
                # A method call `.x(` is not a free function; a local fn wins over an import.
                if callee in module.fns:
                    todo.append((mod, callee))
                elif callee in module.imports:
                    todo.append((module.imports[callee], callee))
    return reached


# --------------------------------------------------------------------------------------------
# Binaries.


@dataclass
class FunctionCalls:
    name: str  # `create-green`
    step_module: str  # `steps::create_green`
    step_fn: str
    adapters: list[str]  # AwsClients fields passed: `ecs`, `elb`, `ecr`
    ports: set[str]  # port methods reached
    #: IAM action → why (the port method and SDK call it comes from)
    actions: dict[str, str]


def adapter_paths(src: Path) -> list[Path]:
    """The library's SDK adapters: every file whose non-test code does `use aws_sdk_<x>::Client;`."""
    return [p for p in sorted(src.rglob("*.rs")) if re.search(r"\buse\s+aws_sdk_[a-z0-9]+::Client\s*;", read_code(p))]


def derive(root: Path) -> dict[str, FunctionCalls]:
    """The AWS actions of every function under ``functions/``, keyed by function name."""
    src = root / "crates/bluegreen/src"
    adapters = {}
    for path in adapter_paths(src):
        a = analyze_adapter(path)
        if a.trait in adapters:
            raise DerivationError(f"{a.trait} has two SDK adapters: {adapters[a.trait].file} and {path}")
        adapters[a.trait] = a
    if not adapters:
        raise DerivationError(f"no SDK adapter found under {src}")
    traits: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.rs")):
        for name, methods in port_traits(path).items():
            if name in adapters:
                traits[name] = methods
    for trait, a in adapters.items():
        if trait not in traits:
            raise DerivationError(f"{a.file}: implements {trait}, whose trait definition was not found")
        missing = traits[trait] - set(a.actions)
        if missing:
            raise DerivationError(f"{a.file}: {trait} methods without an SDK implementation: {sorted(missing)}")
    names = [m for ms in traits.values() for m in ms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DerivationError(f"port method names must be unique across the AWS ports to be attributed: {dupes}")
    port_methods = set(names)

    adapter_files = {a.file for a in adapters.values()}
    for file in sorted(src.rglob("*.rs")):
        if file in adapter_files:
            continue
        code = read_code(file)
        if re.search(r"\.\s*client\s*\(\s*\)", code):
            raise DerivationError(f"{file}: uses an adapter's client() outside the adapters, which the derivation cannot see")
        if re.search(r"\baws_sdk_", code) and re.search(r"\.\s*send\s*\(\s*\)", code):
            raise DerivationError(f"{file}: sends AWS SDK requests outside an adapter (`use aws_sdk_<x>::Client;` + `impl <Port> for <Adapter>`)")
    mod_code = read_code(src / "aws/mod.rs")
    fields = dict(re.findall(r"pub\s+(\w+)\s*:\s*(Sdk\w+)\s*,", mod_code))
    struct_trait = {a.struct: a.trait for a in adapters.values()}

    modules = library_modules(src)
    result = {}
    for main in sorted(root.glob("functions/*/src/main.rs")):
        name = main.parent.parent.name
        code = read_code(main)
        if re.search(r"aws_sdk_\w+|\.\s*client\s*\(", code):
            raise DerivationError(f"{main}: builds or uses SDK clients directly; go through the library's adapters")
        m = re.search(r"use\s+bluegreen::steps::(\w+)::(\w+)\s*;", code)
        if not m:
            raise DerivationError(f"{main}: no `use bluegreen::steps::<step>::<fn>;`")
        step_module, step_fn = f"steps::{m.group(1)}", m.group(2)
        if not re.search(rf"\b{step_fn}\s*\(", code[m.end() :]):
            raise DerivationError(f"{main}: never calls {step_fn}")
        # The adapters the binary hands to its step: AwsClients fields, and adapters it builds.
        passed = sorted(set(re.findall(r"\baws\s*\.\s*(\w+)", code)) & set(fields))
        structs = {fields[p] for p in passed} | (set(re.findall(r"\b(Sdk\w+)", code)) & set(struct_trait))
        reached = port_calls(modules, step_module, step_fn, port_methods)
        allowed_traits = {struct_trait[s] for s in structs}
        actions: dict[str, str] = {}
        for method in sorted(reached):
            trait = next(t for t, ms in traits.items() if method in ms)
            if trait not in allowed_traits:
                raise DerivationError(f"{name}: {step_fn} calls {trait}::{method} but main.rs does not pass that adapter")
            for action, why in adapters[trait].actions[method].items():
                actions.setdefault(action, f"{trait}::{method} → {why}")
        result[name] = FunctionCalls(name, step_module, step_fn, sorted(structs), reached, actions)
    if not result:
        raise DerivationError("no functions/*/src/main.rs found")
    return result


def all_adapter_operations(root: Path) -> dict[str, tuple[str, set[str]]]:
    """Every SDK operation each adapter file sends, with the file's IAM prefix."""
    src = root / "crates/bluegreen/src"
    adapters = (analyze_adapter(p) for p in adapter_paths(src))
    return {a.file.relative_to(src).as_posix(): (IAM_PREFIX[a.sdk_crate], a.operations) for a in adapters}


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    for fn, calls in derive(root).items():
        print(f"{fn} ({calls.step_module}::{calls.step_fn}, adapters {', '.join(calls.adapters)})")
        for action, why in sorted(calls.actions.items()):
            print(f"  {action:50} {why}")
