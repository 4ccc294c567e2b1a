"""The AWS actions each Lambda function can call, derived from the Rust sources.

No table is kept by hand. The chain is read from the code:

1. The SDK adapters: every ``pub struct Sdk…`` of a library file that does
   ``use aws_sdk_<service>::Client;``, and every ``impl <Port> for Sdk…`` of it in any library
   file. Each port method's SDK operations are what it sends
   (``self.client.describe_services()…send()``, also through ``self.client()``), following
   calls into the adapter's own helpers (``self.describe_task_definition(…)``); request fields
   imply further authorization (a ``*_role_arn`` field is ``iam:PassRole``; tags on a create
   or register call are the service's tag-on-create action).
2. The port traits those adapters implement, and their methods. Their names are unique across
   the ports, and no other library function has one, so a method call ``.service(`` is a call
   of that port method.
3. ``functions/<fn>/src/main.rs`` and everything it reaches in the library: a free call is
   followed to the function of that name in the module it is imported from (or the same
   module), ``Type::f(`` to ``f`` of that type's impl blocks, ``module::f(`` to that module's
   ``f``, and a method call ``.f(`` to every library method named ``f`` (an
   over-approximation only among methods of the same name). The port methods met on the way
   are what the binary calls.
4. The adapters the binary can use: the ``AwsClients`` fields its ``main.rs`` passes
   (``aws.ecs``…) and the ``Sdk…`` adapters named in ``main.rs`` or in library code it
   reaches (``SdkSecretStore::from_conf`` inside ``dynatrace::from_env``). A reached port
   method whose port none of those adapters implements is served by another implementation
   (the Dynatrace HTTP client) and needs no AWS action.

Test code (``#[cfg(test)]`` items), the fakes and ``aws/mod.rs`` (which builds every client)
are not followed. The derivation is strict: an SDK call in an adapter that no port method
reaches, a ``.send()`` that is not on the adapter's client, a use of the ``client()`` escape
hatch outside the adapters, SDK requests sent from a file that is not an adapter, an SDK client
built in a ``main.rs``, or a port method name shared with another library function, is an
error rather than a silent gap.
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
    return [(name, body) for name, body, _ in fn_bodies_at(code)]


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
# Items: functions with the impl block they belong to.


@dataclass
class Item:
    name: str
    body: str
    module: str  # `steps::validate`
    owner: str | None  # the impl block's type, None for a free function
    trait: str | None  # the impl block's trait, if any
    is_method: bool  # takes self
    #: the types its signature names (parameters, return type, bounds)
    signature_types: frozenset[str] = frozenset()


def impl_headers(code: str) -> list[tuple[int, int, str | None, str]]:
    """``(body_start, body_end, trait, type)`` of every ``impl`` block, generics dropped."""
    found = []
    for m in re.finditer(r"(?m)^[ \t]*impl\b", code):
        i = m.end()
        # Skip `<…>` generic parameters.
        while i < len(code) and code[i].isspace():
            i += 1
        if i < len(code) and code[i] == "<":
            depth = 0
            while i < len(code):
                if code[i] == "<":
                    depth += 1
                elif code[i] == ">":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        brace = code.find("{", i)
        if brace < 0:
            continue
        header = code[i:brace]
        header = header.split(" where ")[0].split("\nwhere")[0]
        # Drop generic arguments: `Trigger<'_, X, E, S>` → `Trigger`.
        flat, depth = [], 0
        for ch in header:
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
            elif depth == 0:
                flat.append(ch)
        header = "".join(flat)
        mm = re.match(r"\s*(?:([\w:]+)\s+for\s+)?&?(?:'\w+\s+)?([\w:]+)", header)
        if not mm:
            continue
        trait = mm.group(1).split("::")[-1] if mm.group(1) else None
        found.append((brace, matching_brace(code, brace), trait, mm.group(2).split("::")[-1]))
    return found


def items_of(code: str, module: str) -> list[Item]:
    impls = impl_headers(code)
    items = []
    for name, body, start in fn_bodies_at(code):
        owner = trait = None
        for b, e, t, ty in impls:
            if b < start < e:
                owner, trait = ty, t
        sig = code[start : start + 400].split("{", 1)[0]
        is_method = bool(re.search(r"\(\s*&?\s*(?:'\w+\s+)?(?:mut\s+)?self\b", sig))
        signature_types = frozenset(re.findall(r"\b([A-Z][A-Za-z0-9]*)\b", sig))
        items.append(Item(name, body, module, owner, trait, is_method, signature_types))
    return items


def fn_bodies_at(code: str) -> list[tuple[str, str, int]]:
    """``(name, body, offset of fn)`` of every function with a body."""
    found = []
    for m in re.finditer(r"\bfn\s+([a-z_][a-z0-9_]*)\b", code):
        # The body starts at the first `{` after the signature; a `;` first means a
        # declaration without a body (trait method).
        j, depth = m.end(), 0
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
        found.append((m.group(1), code[j + 1 : matching_brace(code, j)], m.start()))
    return found


def imports_of(code: str, root: str) -> dict[str, str]:
    """Name → module path of the `use <root>::…` lines (`crate` or `bluegreen`)."""
    imports = {}
    for m in re.finditer(rf"\buse\s+{root}::([\w:]+?)(?:::\{{([^}}]*)\}}|::(\w+))\s*;", code):
        base, group, single = m.group(1), m.group(2), m.group(3)
        names = [single] if single else [g.strip() for g in group.split(",")]
        for item in names:
            if not item or item == "self":
                continue
            if "::" in item:  # `workflow::WorkflowConfig`
                sub, leaf = item.rsplit("::", 1)
                imports[leaf] = f"{base}::{sub}"
            else:
                imports[item] = base
    return imports


def module_path(src_root: Path, file: Path) -> str:
    rel = file.relative_to(src_root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


# --------------------------------------------------------------------------------------------
# Adapters: port method → SDK operations (and implied actions).


@dataclass
class Adapter:
    file: Path
    sdk_crate: str
    struct: str
    trait: str
    #: port method → the IAM actions it needs, each with why (the SDK call it comes from).
    actions: dict[str, dict[str, str]] = field(default_factory=dict)
    #: every SDK operation sent in the impl's code.
    operations: set[str] = field(default_factory=set)


@dataclass
class SdkCall:
    operation: str  # snake_case SDK operation
    setters: list[str]  # request fields set on the fluent builder


SDK_CALL = re.compile(r"self\s*\.\s*client\s*(?:\(\s*\))?\s*\.\s*([a-z_][a-z0-9_]*)\s*\(\s*\)")


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


def sdk_structs(files: list[Path]) -> dict[str, str]:
    """``Sdk…`` adapter struct → SDK crate, from the files that `use aws_sdk_<x>::Client;`."""
    structs = {}
    for path in files:
        code = read_code(path)
        m = re.search(r"use\s+aws_sdk_([a-z0-9]+)::Client\s*;", code)
        if not m:
            continue
        crate = m.group(1)
        if crate not in IAM_PREFIX:
            raise DerivationError(f"{path}: SDK crate aws_sdk_{crate} has no IAM prefix in IAM_PREFIX")
        found = re.findall(r"pub\s+struct\s+(Sdk\w+)", code)
        if not found:
            raise DerivationError(f"{path}: uses an SDK client but defines no `pub struct Sdk…` adapter")
        for struct in found:
            structs[struct] = crate
    return structs


def analyze_adapters(files: list[Path]) -> list[Adapter]:
    """Every ``impl <Port> for Sdk…`` of ``files``, with what each method sends."""
    structs = sdk_structs(files)
    helpers: dict[str, dict[str, str]] = {s: {} for s in structs}
    impls: list[tuple[Path, str, str, str]] = []  # file, trait, struct, body
    sends: dict[Path, int] = {}
    for path in files:
        code = read_code(path)
        for b, e, trait, ty in impl_headers(code):
            if ty not in structs:
                continue
            body = code[b + 1 : e]
            if trait is None:
                helpers[ty].update({n: bd for n, bd, _ in fn_bodies_at(body)})
            else:
                impls.append((path, trait, ty, body))
        if any(ty in structs for _, _, _, ty in impl_headers(code)):
            sent = len(re.findall(r"\.\s*send\s*\(\s*\)", code))
            calls = len(SDK_CALL.findall(code))
            if sent != calls:
                raise DerivationError(
                    f"{path}: {sent} `.send()` but {calls} `self.client.<op>()` calls; every SDK call must go through the adapter's client"
                )
            sends[path] = sent
    adapters = []
    for path, trait, struct, body in impls:
        prefix = IAM_PREFIX[structs[struct]]

        def reach(code: str, seen: frozenset[str], struct=struct, prefix=prefix) -> dict[str, str]:
            acts: dict[str, str] = {}
            for call in sdk_calls(code):
                acts.update(actions_of(call, prefix))
            for h in re.findall(r"self\s*\.\s*([a-z_][a-z0-9_]*)\s*\(", code):
                if h in helpers[struct] and h not in seen:
                    acts.update(reach(helpers[struct][h], seen | {h}))
            return acts

        a = Adapter(path, structs[struct], struct, trait)
        a.actions = {name: reach(b, frozenset()) for name, b, _ in fn_bodies_at(body)}
        a.operations = {c.operation for c in sdk_calls(body)}
        for h in helpers[struct].values():
            a.operations |= {c.operation for c in sdk_calls(h)}
        adapters.append(a)
    # Every SDK operation of a struct is reached by some port method.
    for struct, crate in structs.items():
        prefix = IAM_PREFIX[crate]
        ops = {c.operation for h in helpers[struct].values() for c in sdk_calls(h)}
        ops |= {c.operation for a in adapters if a.struct == struct for c in sdk_calls_all(a)}
        reached = {act for a in adapters if a.struct == struct for acts in a.actions.values() for act in acts}
        for op in ops:
            if f"{prefix}:{pascal(op)}" not in reached:
                raise DerivationError(f"{struct}: SDK operation {op} is called but no port method reaches it")
    return adapters


def sdk_calls_all(a: Adapter) -> list[SdkCall]:
    return [SdkCall(op, []) for op in a.operations]


def analyze_adapter(path: Path) -> Adapter:
    """The one adapter of a file that defines its struct and implements one port."""
    adapters = analyze_adapters([path])
    if len(adapters) != 1:
        raise DerivationError(f"{path}: expected exactly one `impl <Port> for <Adapter>`, found {len(adapters)}")
    return adapters[0]


def port_traits(path: Path) -> dict[str, set[str]]:
    """The `pub trait`s of a file and their method names."""
    code = read_code(path)
    traits = {}
    for m in re.finditer(r"pub\s+trait\s+(\w+)[^{;]*\{", code):
        body = code[m.end() : matching_brace(code, m.end() - 1)]
        traits[m.group(1)] = set(re.findall(r"\bfn\s+([a-z_][a-z0-9_]*)", body))
    return traits


# --------------------------------------------------------------------------------------------
# Reachability from a binary's main.rs.


@dataclass
class Library:
    items: list[Item]
    imports: dict[str, dict[str, str]]  # module → its imports
    modules: set[str]
    #: type → the types its definition names (a struct's field types, an enum's payloads):
    #: a value of a type carries values of these, whose methods the code can call.
    contains: dict[str, set[str]] = field(default_factory=dict)

    def free(self, module: str, name: str) -> list[Item]:
        return [i for i in self.items if i.module == module and i.name == name and i.owner is None]

    def of_type(self, ty: str, name: str) -> list[Item]:
        return [i for i in self.items if i.owner == ty and i.name == name]

    def methods(self, name: str) -> list[Item]:
        return [i for i in self.items if i.is_method and i.name == name]


def reach(lib: Library, start_body: str, start_imports: dict[str, str], port_methods: set[str]) -> tuple[set[str], set[str]]:
    """The port methods and the ``Sdk…`` names reached from ``start_body``.

    A method call ``.f(`` is followed only into methods of types the reached code names
    (constructs, calls an associated function of, takes or returns), or that the definitions
    of those types name (a field of a named type): a method of a type the binary never has cannot be what it
    calls. That keeps ``.status(`` on an HTTP response from reaching the
    webhook's ``status``. The types named grow as code is reached, so this runs to a fixpoint.
    """
    ports: set[str] = set()
    types: set[str] = set(re.findall(r"\b([A-Z][A-Za-z0-9]*)\b", start_body))
    while True:
        before = (len(ports), len(types))
        seen: set[int] = set()
        sdk_names: set[str] = set()
        todo: list[tuple[str, str, dict[str, str], str | None]] = [(start_body, "", start_imports, None)]
        while todo:
            body, module, imports, owner = todo.pop()
            sdk_names |= set(re.findall(r"\b(Sdk\w+)\b", body))
            types |= set(re.findall(r"\b([A-Z][A-Za-z0-9]*)\b", body))
            targets: list[Item] = []
            for m in re.finditer(r"(\.\s*|(?:\b[\w]+::)+)?\b([a-z_][a-z0-9_]*)\s*(?:::<[^>]*>)?\s*\(", body):
                qual, name = (m.group(1) or "").strip(), m.group(2)
                if qual.startswith("."):
                    if name in port_methods:
                        ports.add(name)
                    else:
                        targets += [t for t in lib.methods(name) if t.owner in types]
                elif qual:
                    path = [p for p in qual.split("::") if p]
                    if path and path[0] in ("bluegreen", "crate"):
                        path = path[1:]
                    if path and path[-1][:1].isupper():
                        ty = owner if path[-1] == "Self" else path[-1]
                        targets += lib.of_type(ty, name) if ty else []
                    elif path:
                        mod = "::".join(path)
                        if mod not in lib.modules and path[0] in imports:
                            mod = "::".join([imports[path[0]], *path])
                        if mod not in lib.modules and module:
                            parent = module.rsplit("::", 1)[0] if "::" in module else ""
                            for cand in (f"{module}::{mod}", f"{parent}::{mod}" if parent else mod):
                                if cand in lib.modules:
                                    mod = cand
                                    break
                        targets += lib.free(mod, name)
                else:
                    local = lib.free(module, name) if module else []
                    if local:
                        targets += local
                    elif name in imports:
                        targets += lib.free(imports[name], name)
            for t in targets:
                types |= t.signature_types
                if id(t) not in seen:
                    seen.add(id(t))
                    todo.append((t.body, t.module, lib.imports.get(t.module, {}), t.owner))
        for ty in list(types):
            types |= lib.contains.get(ty, set())
        if (len(ports), len(types)) == before:
            return ports, sdk_names


# --------------------------------------------------------------------------------------------
# Binaries.


@dataclass
class FunctionCalls:
    name: str  # `create-green`
    adapters: list[str]  # the Sdk… adapters the binary can use
    ports: set[str]  # port methods reached (served by an SDK adapter)
    #: IAM action → why (the port method and SDK call it comes from)
    actions: dict[str, str]


def adapter_paths(src: Path) -> list[Path]:
    """Library files with adapter code: those that use an SDK client or implement a port for an
    ``Sdk…`` struct."""
    files = sorted(src.rglob("*.rs"))
    structs = sdk_structs(files)
    found = []
    for p in files:
        code = read_code(p)
        if re.search(r"\buse\s+aws_sdk_[a-z0-9]+::Client\s*;", code) or any(
            ty in structs for _, _, _, ty in impl_headers(code)
        ):
            found.append(p)
    return found


def derive(root: Path) -> dict[str, FunctionCalls]:
    """The AWS actions of every function under ``functions/``, keyed by function name."""
    src = root / "crates/bluegreen/src"
    files = [p for p in sorted(src.rglob("*.rs")) if p.name != "fakes.rs"]
    adapters = analyze_adapters(files)
    if not adapters:
        raise DerivationError(f"no SDK adapter found under {src}")
    by_trait: dict[str, Adapter] = {}
    for a in adapters:
        if a.trait in by_trait:
            raise DerivationError(f"{a.trait} has two SDK adapters: {by_trait[a.trait].struct} and {a.struct}")
        by_trait[a.trait] = a
    traits: dict[str, set[str]] = {}
    for path in files:
        for name, methods in port_traits(path).items():
            if name in by_trait:
                traits[name] = methods
    for trait, a in by_trait.items():
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
    port_of = {m: t for t, ms in traits.items() for m in ms}

    adapter_files = set(adapter_paths(src))
    items: list[Item] = []
    imports: dict[str, dict[str, str]] = {}
    contains: dict[str, set[str]] = {}
    for file in files:
        code = read_code(file)
        module = module_path(src, file)
        for m in re.finditer(r"\b(?:struct|enum)\s+([A-Z]\w*)[^{;]*\{", code):
            body = code[m.end() : matching_brace(code, m.end() - 1)]
            contains.setdefault(m.group(1), set()).update(re.findall(r"\b([A-Z][A-Za-z0-9]*)\b", body))
        if file not in adapter_files:
            if re.search(r"\.\s*client\s*\(\s*\)", code):
                raise DerivationError(f"{file}: uses an adapter's client() outside the adapters, which the derivation cannot see")
            if re.search(r"\baws_sdk_", code) and re.search(r"\.\s*send\s*\(\s*\)", code):
                raise DerivationError(f"{file}: sends AWS SDK requests outside an adapter")
        if module.split("::")[0] == "aws" or module == "lib":
            continue  # the adapters and the client factory are not followed
        imports[module] = imports_of(code, "crate")
        for it in items_of(code, module):
            if it.owner and it.owner.startswith("Sdk"):
                continue  # adapter impls (e.g. SdkSecretStore's own file)
            items.append(it)
    clashes = sorted({i.name for i in items if i.name in port_methods and i.trait not in traits})
    if clashes:
        raise DerivationError(f"library functions named like a port method, which method calls cannot tell apart: {clashes}")
    lib = Library(items, imports, set(imports), contains)

    mod_code = read_code(src / "aws/mod.rs")
    fields = dict(re.findall(r"pub\s+(\w+)\s*:\s*(Sdk\w+)\s*,", mod_code))
    struct_traits: dict[str, set[str]] = {}
    for a in adapters:
        struct_traits.setdefault(a.struct, set()).add(a.trait)

    result = {}
    for main in sorted(root.glob("functions/*/src/main.rs")):
        name = main.parent.parent.name
        code = read_code(main)
        if re.search(r"aws_sdk_\w+|\.\s*client\s*\(", code):
            raise DerivationError(f"{main}: builds or uses SDK clients directly; go through the library's adapters")
        ports, sdk_names = reach(lib, code, imports_of(code, "bluegreen"), port_methods)
        passed = set(re.findall(r"\baws\s*\.\s*(\w+)", code)) & set(fields)
        structs = {fields[p] for p in passed} | (sdk_names & set(struct_traits))
        usable = {t for s in structs for t in struct_traits[s]}
        actions: dict[str, str] = {}
        served = set()
        for method in sorted(ports):
            trait = port_of[method]
            if trait not in usable:
                continue  # served by another implementation, or by no adapter this binary has
            served.add(method)
            for action, why in by_trait[trait].actions[method].items():
                actions.setdefault(action, f"{trait}::{method} → {why}")
        result[name] = FunctionCalls(name, sorted(structs), served, actions)
    if not result:
        raise DerivationError("no functions/*/src/main.rs found")
    return result


def all_adapter_operations(root: Path) -> dict[str, tuple[str, set[str]]]:
    """Every SDK operation each adapter (struct and port) sends, with its IAM prefix."""
    src = root / "crates/bluegreen/src"
    files = [p for p in sorted(src.rglob("*.rs")) if p.name != "fakes.rs"]
    return {f"{a.struct}/{a.trait}": (IAM_PREFIX[a.sdk_crate], a.operations) for a in analyze_adapters(files)}


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    for fn, calls in derive(root).items():
        print(f"{fn} (adapters {', '.join(calls.adapters)})")
        for action, why in sorted(calls.actions.items()):
            print(f"  {action:50} {why}")
