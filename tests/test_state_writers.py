"""One writer per state machine: the status of a Run, a Block, a MessageBatch or a WebhookDelivery is
written only by its transitions module. Services decide when a row moves; the transitions say how.

The scan reads every module of apps/ (migrations aside: they are history) and reports each status
write outside the modules in WRITERS. Only those four models have a field named `status` (the first
test holds that true), so a write of a field named `status` is a write of one of them. A status write
is any of:

- W1 a call of `.update(...)`, `.create(...)`, `.get_or_create(...)`, `.update_or_create(...)` or of
  a governed model's class (`Block(...)`) that names `status`: as a keyword, in a `defaults=` /
  `create_defaults=` dict, or in a dict splatted into it (`**{"status": ...}`, or `**changes` where
  `changes` is given a "status" key in the same function). `dict.update(status=...)` counts too: it
  is how keyword arguments of a later `.update(**changes)` are built;
- W2 an assignment to an attribute named `status` (`row.status = ...`, also augmented, annotated or
  unpacked, and `setattr(row, "status", ...)`): an instance changed in memory is written by whatever
  saves it next;
- W3 a field list naming "status" given to `.save(update_fields=...)`, `.bulk_update(...)` or
  `.write_rows(...)` (as a literal, or a name bound to one in the module or function); and a bare
  `.save()`, which writes every field, unless every assignment of its receiver in that function comes
  from a model that is not governed (`PipelineFailure.objects...`);
- W4 raw SQL: a string that sets `status` in an UPDATE's SET clause or names it in an INSERT's
  column list.

Creating a row without naming its status is allowed anywhere: the model's default is its machine's
initial state (a run `queued`, a block `pending`, a batch `submitting`, a delivery `pending`), so
submission's COPY of new blocks, `MessageBatch.objects.create(...)` in batching/submit.py and
`WebhookDelivery.objects.create(...)` in webhooks/services.py write no status of their own. Naming a
status at creation is a status write (W1), allowed only in a transitions module.
"""

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory

ROOT = Path(__file__).resolve().parent.parent

# The modules that may write a status, and whose status each one owns.
WRITERS = {
    "apps/runs/transitions.py": ("runs.Run", "runs.Block"),
    "apps/runs/batching/transitions.py": ("runs.MessageBatch",),
    "apps/webhooks/transitions.py": ("webhooks.WebhookDelivery",),
    "apps/pipelines/transitions.py": ("pipelines.Pipeline", "pipelines.PipelineItem"),
}
GOVERNED = {label for labels in WRITERS.values() for label in labels}
GOVERNED_NAMES = {label.split(".")[1] for label in GOVERNED}

WRITE_METHODS = {"update", "create", "get_or_create", "update_or_create"}
DEFAULTS_KEYWORDS = {"defaults", "create_defaults"}
# Calls that write the fields they are given, and where the field list is: (positional index, keyword).
FIELD_LIST_WRITERS = {"save": (None, "update_fields"), "bulk_update": (1, "fields"),
                      "write_rows": (1, "fields")}
SQL_SETS_STATUS = re.compile(
    r"""\bSET\b(?:(?!\bWHERE\b|\bFROM\b|\bRETURNING\b)[^;])*?["'`]?\bstatus\b["'`]?\s*=""",
    re.IGNORECASE,
)
SQL_INSERTS_STATUS = re.compile(r"""\bINSERT\s+INTO\s+[^(]+\(([^)]*)\)""", re.IGNORECASE)


@dataclass(frozen=True)
class StatusWrite:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _is_status(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value == "status"


def _root_name(node: ast.AST) -> str | None:
    """`Block` for `Block.objects.filter(...).first()`: the name a chain of calls starts from."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


class Scope:
    """What one function (or the module's top level) binds: literals by name, and the origins of
    names, for field lists and bare saves."""

    def __init__(self, body: ast.AST, parent: "Scope | None" = None) -> None:
        self.parent = parent
        self.literals: dict[str, list[ast.AST]] = {}
        self.origins: dict[str, list[str | None]] = {}
        self.status_keyed: set[str] = set()
        for node in _own_nodes(body):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.literals.setdefault(target.id, []).append(node.value)
                        self.origins.setdefault(target.id, []).append(_root_name(node.value))
                        if isinstance(node.value, ast.Dict) and any(map(_is_status, node.value.keys)):
                            self.status_keyed.add(target.id)
                    elif (isinstance(target, ast.Subscript) and _is_status(target.slice)
                          and isinstance(target.value, ast.Name)):
                        self.status_keyed.add(target.value.id)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                self.origins.setdefault(node.target.id, []).append(_root_name(node.iter))
            elif isinstance(node, ast.arg):
                annotation = node.annotation
                origin = _root_name(annotation) if annotation is not None else None
                if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                    origin = annotation.value
                self.origins.setdefault(node.arg, []).append(origin)

    def literal(self, name: str) -> list[ast.AST]:
        found = self.literals.get(name)
        if found is not None or self.parent is None:
            return found or []
        return self.parent.literal(name)

    def names_status(self, node: ast.AST, seen: frozenset[str] = frozenset()) -> bool:
        """A field list that names "status", itself or through names and `*` unpacking."""
        if _is_status(node):
            return True
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return any(self.names_status(element, seen) for element in node.elts)
        if isinstance(node, ast.Starred):
            return self.names_status(node.value, seen)
        if isinstance(node, ast.BinOp):
            return self.names_status(node.left, seen) or self.names_status(node.right, seen)
        if isinstance(node, ast.Name) and node.id not in seen:
            return any(self.names_status(bound, seen | {node.id}) for bound in self.literal(node.id))
        return False


def _own_nodes(body: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function (or module) without those of the functions defined inside it."""
    stack = list(ast.iter_child_nodes(body))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def _dict_names_status(node: ast.AST) -> bool:
    if isinstance(node, ast.Dict):
        return any(map(_is_status, node.keys))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return any(keyword.arg == "status" for keyword in node.keywords)
    return False


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _check_call(call: ast.Call, scope: Scope) -> str | None:
    name = _callee(call)
    if name in WRITE_METHODS or name in GOVERNED_NAMES:
        for keyword in call.keywords:
            if keyword.arg == "status":
                return f"{name}(status=...)"
            if keyword.arg in DEFAULTS_KEYWORDS and _dict_names_status(keyword.value):
                return f"{name}({keyword.arg}={{'status': ...}})"
            if keyword.arg is None and (
                _dict_names_status(keyword.value)
                or (isinstance(keyword.value, ast.Name) and keyword.value.id in scope.status_keyed)
            ):
                return f"{name}(**...) with a 'status' key"
    if name == "setattr" and len(call.args) >= 2 and _is_status(call.args[1]):
        return "setattr(..., 'status', ...)"
    if name in FIELD_LIST_WRITERS:
        index, keyword_name = FIELD_LIST_WRITERS[name]
        fields = next((k.value for k in call.keywords if k.arg == keyword_name), None)
        if fields is None and index is not None and len(call.args) > index:
            fields = call.args[index]
        if fields is not None and scope.names_status(fields):
            return f"{name}(...) of fields naming 'status'"
        if name == "save" and fields is None and not call.args and isinstance(call.func, ast.Attribute):
            receiver = call.func.value
            origins = scope.origins.get(receiver.id, []) if isinstance(receiver, ast.Name) else []
            known = [origin for origin in origins if origin is not None]
            if not origins or len(known) < len(origins) or any(o in GOVERNED_NAMES for o in known):
                return "save() of every field, on a row that may be governed"
    return None


def _status_targets(target: ast.AST) -> bool:
    if isinstance(target, ast.Attribute):
        return target.attr == "status"
    if isinstance(target, ast.Tuple | ast.List):
        return any(_status_targets(element) for element in target.elts)
    if isinstance(target, ast.Starred):
        return _status_targets(target.value)
    return False


def _assigns_status(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign):
        return any(map(_status_targets, node.targets))
    return isinstance(node, ast.AugAssign | ast.AnnAssign) and _status_targets(node.target)


def _check_sql(text: str) -> str | None:
    if SQL_SETS_STATUS.search(text):
        return "raw SQL setting status"
    for columns in SQL_INSERTS_STATUS.findall(text):
        if re.search(r"""["'`]?\bstatus\b["'`]?""", columns):
            return "raw SQL inserting a status"
    return None


def scan_source(source: str, path: str = "<source>") -> list[StatusWrite]:
    """Every status write in one module's source."""
    tree = ast.parse(source)
    found: list[StatusWrite] = []
    module = Scope(tree)

    def visit(body: ast.AST, scope: Scope) -> None:
        for node in _own_nodes(body):
            what = None
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(node, Scope(node, scope))
                continue
            if isinstance(node, ast.Call):
                what = _check_call(node, scope)
            elif _assigns_status(node):
                what = "assignment to .status"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                what = _check_sql(node.value)
            if what:
                found.append(StatusWrite(path, node.lineno, what))

    visit(tree, module)
    return sorted(found, key=lambda write: write.line)


def status_writes_outside_writers() -> list[StatusWrite]:
    found = []
    for path in sorted((ROOT / "apps").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/migrations/" in relative or relative in WRITERS:
            continue
        found.extend(scan_source(path.read_text(), relative))
    return found


# --- the rule, held by the code base ------------------------------------------------------------------

def test_only_the_governed_models_have_a_status_field():
    with_status = {
        model._meta.label for model in django_apps.get_models()
        if any(field.name == "status" for field in model._meta.concrete_fields)
    }
    assert with_status == GOVERNED, (
        "a model with a `status` field needs a transitions module of its own, listed in WRITERS"
    )


def test_every_writer_module_exists():
    assert [path for path in WRITERS if not (ROOT / path).is_file()] == []


def test_no_status_is_written_outside_the_transitions_modules():
    writes = status_writes_outside_writers()
    assert not writes, "status written outside its transitions module:\n" + "\n".join(map(str, writes))


@pytest.mark.parametrize("label", sorted(GOVERNED))
def test_the_admin_cannot_add_or_change_a_governed_row(label):
    model = django_apps.get_model(label)
    model_admin = admin.site._registry.get(model)
    if model_admin is None:
        return
    request = RequestFactory().get("/")
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    assert (model_admin.has_add_permission(request), model_admin.has_change_permission(request)) == (
        False, False)


# --- the scan itself: what it finds and what it leaves ------------------------------------------------

@pytest.mark.parametrize("source", [
    "Block.objects.filter(pk=1).update(status='failed')",
    "Run.objects.create(owner=o, status='running')",
    "Block(run=r, status='claimed')",
    "WebhookDelivery.objects.update_or_create(pk=1, defaults={'status': 'failed'})",
    "MessageBatch.objects.filter(pk=1).update(**{'status': 'ended'})",
    "def f():\n    changes = {'status': 'ended', 'error': ''}\n    MessageBatch.objects.update(**changes)",
    "def f():\n    changes = {}\n    changes['status'] = 'x'\n    MessageBatch.objects.update(**changes)",
    "def f(changes):\n    changes.update(status='delivered')",
    "def f(row):\n    row.status = 'pending'",
    "def f(a, b):\n    a.status, b = 'x', 1",
    "def f(row):\n    setattr(row, 'status', 'pending')",
    "def f(row):\n    row.save(update_fields=['status', 'next_attempt_at'])",
    "FIELDS = ('status', 'error_code')\nMORE = (*FIELDS, 'output')\n"
    "def f(rows):\n    Block.objects.write_rows(rows, MORE)",
    "def f(rows):\n    Block.objects.bulk_update(rows, fields=['status'])",
    "def f(pk):\n    row = WebhookDelivery.objects.get(pk=pk)\n    row.save()",
    "def f(row):\n    row.save()",
    "SQL = 'UPDATE runs_block SET lease_token = NULL, \"status\" = %s WHERE id = %s'",
    "SQL = 'INSERT INTO runs_run (id, status) VALUES (%s, %s)'",
])
def test_the_scan_finds_a_status_write(source):
    assert scan_source(source) != []


@pytest.mark.parametrize("source", [
    "Block.objects.filter(status='pending').update(next_attempt_at=None)",
    "Run.objects.exclude(status__in=ENDED).filter(Q(status='running')).count()",
    "Run.objects.create(owner=o, name='x')",
    "Response(body, status=201)",
    "record_block_finished(status=status, n=2)",
    "Claim(run_status=run.status)",
    "def f(run):\n    if run.status == 'running':\n        return run.status",
    "def f(row):\n    row.save(update_fields=['attempts', 'next_attempt_at'])",
    "def f(pk):\n    row = PipelineFailure.objects.get(pk=pk)\n    row.save()",
    "def f():\n    body = {'status': 'ok'}\n    return JsonResponse(body, status=200)",
    "SQL = 'UPDATE runs_run SET cost_usd = 0 WHERE status = %s'",
    "SQL = 'SELECT status, COUNT(*) FROM runs_block GROUP BY status'",
])
def test_the_scan_leaves_reads_and_other_fields_alone(source):
    assert scan_source(source) == []
