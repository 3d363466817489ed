"""Check every code example of the documentation that is not a ``>>>`` example.

``tests/docs/test_docs_examples.py`` runs the ``>>>`` examples of each page.
This module finds every other example in ``docs/*.rst`` and ``docs/*.md``
(``code-block`` directives, ``::`` literal blocks, Markdown fences and
``literalinclude``) and checks it by language:

``python``
    Executed in-process. Functions named ``test_*`` that it defines are then
    called, with pytest fixtures for their arguments. A block preceded by the
    comment ``.. code-check: compile-only (reason)`` (``<!-- code-check:
    compile-only (reason) -->`` in Markdown) is only compiled, and its
    ``s3qbb`` imports resolved.
``yaml``
    ``yaml.safe_load``; a repository configuration (it has ``datastore``) is
    loaded with `s3qbb.repo.load_repo_config` and built with
    `s3qbb.repo.build_datastore`, which makes no request.
``json``
    ``json.loads``, then validated as what it is: a repository configuration,
    provenance, an execution report, a ``run-quantum`` outcome, an IAM policy,
    a bucket lifecycle rule, an AWS Batch job definition, SeaweedFS identities.
``sh``, ``bash``, ``console``
    Every command must have a checker: ``s3qbb ...`` is parsed by the real
    command-line parser, ``make`` must name a Makefile target, ``python -m``
    an importable module, ``pip install`` real extras, ``weed`` real flags,
    scripts must exist, ``S3QBB_*`` variables must be ones s3qbb reads.
    The ``console`` blocks of the pages in `SCENARIOS` are also executed, in
    page order, against a moto server set up as the page describes; their
    output must match the page (numbers aside).
``text`` and ``::`` literal blocks
    An HTCondor submit description is checked like a shell command; any
    other text must not be code (Python or a shell command) in disguise.
``literalinclude``
    The file and the ``:pyobject:`` must exist, the file must be imported by
    the test suite, and it is imported here.

Anything else (an unknown language, a directive such as ``parsed-literal``)
fails, naming the page and line: new documentation cannot add an example no
test checks. The examples in docstrings of the modules the API reference
renders (``automodule``) are run as doctests.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import doctest
import functools
import importlib
import importlib.util
import inspect
import io
import json
import logging
import os
import re
import shlex
import subprocess
import textwrap
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from s3qbb.cli.main import COMPLETE_VAR
from s3qbb.s3.client import clear_client_cache

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXCLUDED = {"_build", "_ext", "examples"}  # as docs/conf.py's exclude_patterns
PAGES = sorted(
    page
    for page in [*DOCS.rglob("*.rst"), *DOCS.rglob("*.md")]
    if not EXCLUDED & set(page.relative_to(DOCS).parts)
)
DOCTEST_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Docstring examples marked ``+SKIP``, which never run. Each entry is an example readers see in the API
# reference that no test executes: make it runnable and remove the entry.
KNOWN_SKIPPED_DOCSTRING_EXAMPLES: set[str] = set()


# ------------------------------------------------------------------ extraction


@dataclasses.dataclass(frozen=True)
class Block:
    """One code example of a page."""

    page: Path
    line: int
    """Line of the directive or fence (1-based)."""
    kind: str
    """``code-block``, ``literal`` (``::``), ``fence``, ``literalinclude`` or an unsupported directive."""
    language: str
    text: str
    options: dict[str, str]
    mode: str | None
    """The ``code-check:`` annotation before the block (``compile-only (reason)``), if any."""

    @property
    def name(self) -> str:
        """The page's path under docs/ (its name alone for a page elsewhere)."""
        return str(self.page.relative_to(DOCS)) if self.page.is_relative_to(DOCS) else self.page.name

    @property
    def where(self) -> str:
        return f"docs/{self.name}:{self.line}"

    @property
    def id(self) -> str:
        return f"{Path(self.name).with_suffix('')}:{self.line}:{self.language or self.kind}"


_RST_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\.[ \t]+(?P<name>[\w:-]+)::(?:[ \t]+(?P<arg>.*?))?\s*$")
_RST_ANNOTATION = re.compile(r"^\s*\.\.\s+code-check:\s*(?P<mode>.+?)\s*$")
_MD_ANNOTATION = re.compile(r"^\s*(?:<!--|%)\s*code-check:\s*(?P<mode>.+?)\s*(?:-->)?\s*$")
CODE_DIRECTIVES = {"code-block", "code", "sourcecode"}
# Directives that show code we have no checker for: they fail rather than go unchecked.
UNSUPPORTED_DIRECTIVES = {
    "parsed-literal",
    "highlight",
    "doctest",
    "testcode",
    "testsetup",
    "testoutput",
    "ipython",
    "jupyter-execute",
    "code-cell",
    "raw",
    "program-output",
    "command-output",
}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_body(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """Return the lines from ``start`` indented deeper than ``base`` (blank lines too) and where they end."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    body = lines[start:end]
    while body and not body[-1].strip():
        body.pop()
    return body, end


def _split_options(body: list[str]) -> tuple[dict[str, str], str]:
    """Split a directive body into its ``:option: value`` lines and the dedented content."""
    text = textwrap.dedent("\n".join(body))
    lines = text.splitlines()
    options: dict[str, str] = {}
    while lines and (match := re.match(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$", lines[0])):
        options[match["key"]] = match["value"]
        lines.pop(0)
    return options, "\n".join(lines).strip("\n")


def _annotation(lines: list[str], index: int, pattern: re.Pattern[str]) -> str | None:
    j = index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    match = pattern.match(lines[j]) if j >= 0 else None
    return match["mode"] if match else None


def rst_blocks(page: Path, text: str, offset: int = 0) -> list[Block]:
    """Return the code examples of a reStructuredText page (``>>>`` examples excepted)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _RST_DIRECTIVE.match(line)
        if directive is not None:
            name = directive["name"]
            if name in CODE_DIRECTIVES or name == "literalinclude" or name in UNSUPPORTED_DIRECTIVES:
                body, end = _indented_body(lines, i + 1, _indent(line))
                options, content = _split_options(body)
                arg = directive["arg"] or ""
                if name in CODE_DIRECTIVES:
                    kind, language = "code-block", arg
                elif name == "literalinclude":
                    kind, language, content = "literalinclude", options.get("language", ""), arg
                else:
                    kind, language = name, arg
                mode = _annotation(lines, i, _RST_ANNOTATION)
                blocks.append(Block(page, offset + i + 1, kind, language, content, options, mode))
                i = end
                continue
        elif line.rstrip().endswith("::") and not re.match(r"^\s*\.\.(\s|$)", line):
            body, end = _indented_body(lines, i + 1, _indent(line))
            if any(b.strip() for b in body):
                content = textwrap.dedent("\n".join(body)).strip("\n")
                mode = _annotation(lines, i, _RST_ANNOTATION)
                blocks.append(Block(page, offset + i + 1, "literal", "", content, {}, mode))
                i = end
                continue
        i += 1
    return blocks


_MD_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>.*?)\s*$")


def md_blocks(page: Path, text: str, offset: int = 0) -> list[Block]:
    """Return the code examples of a MyST Markdown page."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _MD_FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = lines[i + 1 : end]
        info = opening["info"]
        mode = _annotation(lines, i, _MD_ANNOTATION)
        directive = re.match(r"^\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$", info)
        if directive is None:
            language = info.split()[0] if info else ""
            blocks.append(Block(page, offset + i + 1, "fence", language, "\n".join(body), {}, mode))
        else:
            name, arg = directive["name"], directive["arg"]
            options, content = _split_options(body)
            if name in CODE_DIRECTIVES:
                blocks.append(Block(page, offset + i + 1, "code-block", arg, content, options, mode))
            elif name == "literalinclude":
                language = options.get("language", "")
                blocks.append(Block(page, offset + i + 1, "literalinclude", language, arg, options, mode))
            elif name in UNSUPPORTED_DIRECTIVES:
                blocks.append(Block(page, offset + i + 1, name, arg, content, options, mode))
            elif name == "eval-rst":
                blocks.extend(rst_blocks(page, "\n".join(body), offset + i + 1))
            else:  # admonitions and the like may hold fences of their own
                blocks.extend(md_blocks(page, "\n".join(body), offset + i + 1))
        i = end + 1
    return blocks


def page_blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return md_blocks(page, text) if page.suffix == ".md" else rst_blocks(page, text)


BLOCKS = [block for page in PAGES for block in page_blocks(page)]


# ---------------------------------------------------------------- environment


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (and clear s3qbb's client cache) for the duration of the block."""
    saved = dict(os.environ)
    os.environ.update(values)
    clear_client_cache()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clear_client_cache()


@pytest.fixture
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Hide the developer's AWS and s3qbb settings, as ``test_docs_examples.py`` does; work in a temp dir."""
    monkeypatch.chdir(tmp_path)
    hidden = {name: "" for name in os.environ if name.startswith(("AWS_", "S3QBB_"))}
    with environment({}):
        for name in hidden:
            del os.environ[name]
        os.environ.update(
            {
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        yield


@contextlib.contextmanager
def preserved_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after code that configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


# -------------------------------------------------------------- what is real


@functools.cache
def documented_variables() -> frozenset[str]:
    """The ``S3QBB_*`` variables s3qbb reads: those of the configuration models and the documented ones."""
    from s3qbb.config import RetryConfig, S3EndpointConfig

    names = set(S3EndpointConfig.env_variables().values()) | set(RetryConfig.env_variables().values())
    names |= set(re.findall(r"``(S3QBB_[A-Z0-9_]+)``", (DOCS / "configuration.rst").read_text()))
    return frozenset(names)


def check_variable(name: str, where: str) -> None:
    if name.startswith("S3QBB_"):
        assert name in documented_variables(), f"{where}: s3qbb reads no variable {name}"


@functools.cache
def make_targets() -> frozenset[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([^\s:=#$][^:=]*?)\s*:(?!=)", line)
        if match:
            targets |= {t for t in match.group(1).split() if "$" not in t and not t.startswith(".")}
    return frozenset(targets)


@functools.cache
def project_extras() -> frozenset[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return frozenset(pyproject["project"].get("optional-dependencies", {}))


@functools.cache
def project_requirements() -> frozenset[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    specs = [*pyproject["project"]["dependencies"]]
    for group in pyproject["project"].get("optional-dependencies", {}).values():
        specs.extend(group)
    return frozenset(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower() for spec in specs)


@functools.cache
def weed_help(subcommand: str) -> str:
    from s3qbb.testing.servers import find_weed_binary

    binary = find_weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS 'weed' is not installed: cannot check weed flags")
    result = subprocess.run(
        [str(binary), subcommand, "-h"], capture_output=True, text=True, timeout=30, check=False
    )
    return result.stdout + result.stderr


def parse_s3qbb_arguments(argv: list[str]) -> click.Context:
    """Parse an ``s3qbb`` command line with the real `click` commands, running nothing.

    Returns the context of the sub-command; raises `click.ClickException` as the command would.
    """
    from s3qbb.cli.main import cli

    command: click.Command = cli
    name, args, parent = "s3qbb", list(argv), None
    while isinstance(command, click.Group):
        ctx = command.context_class(command, info_name=name, parent=parent)
        with ctx.scope(cleanup=False):
            # A group's own options; what is left starts with the sub-command (click.Group.invoke's split).
            rest = click.Command.parse_args(command, ctx, args)
        if not rest:
            raise click.UsageError("Missing command.", ctx)
        found, sub, args = command.resolve_command(ctx, rest)
        assert found is not None and sub is not None
        command, name, parent = sub, found, ctx
    return command.make_context(name, args, parent=parent)


def check_s3qbb_arguments(argv: list[str], where: str) -> click.Context | None:
    """Parse an ``s3qbb`` command line with the real parser; fail with its message (`None` after --help)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return parse_s3qbb_arguments(argv)
    except click.exceptions.Exit:  # --help, --version
        return None
    except click.ClickException as exc:
        pytest.fail(
            f"{where}: 's3qbb {shlex.join(argv)}' is refused by the s3qbb parser: {exc.format_message()}"
        )


_EMBEDDED_S3QBB = re.compile(
    r"(?:^|[\s;&|\"'(])s3qbb\s+(?P<rest>(?:-v+\s+)*(?:run-quantum|inspect|ingest|datasets|provenance)\b[^;&|\n]*)"
)


def check_embedded_commands(text: str, where: str) -> int:
    """Parse every ``s3qbb <sub-command> ...`` inside a string (a job definition, a submit file)."""
    found = 0
    for match in _EMBEDDED_S3QBB.finditer(text):
        check_s3qbb_arguments(shlex.split(match["rest"]), where)
        found += 1
    return found


def check_exec_form(command: Any, where: str) -> int:
    """Parse an exec-form container command ``["s3qbb", "<sub-command>", ...]``; return 1 if it is one."""
    if isinstance(command, list) and command and command[0] == "s3qbb":
        check_s3qbb_arguments([str(word) for word in command[1:]], where)
        return 1
    return 0


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


def walk_dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk_dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_dicts(item)


def check_env_entries(document: Any, where: str) -> None:
    """Check ``{"name": VAR, "value": ...}`` entries (Kubernetes, AWS Batch) name real variables."""
    for entry in walk_dicts(document):
        name = entry.get("name")
        if isinstance(name, str) and ("value" in entry or "valueFrom" in entry) and name.isupper():
            check_variable(name, where)


# -------------------------------------------------------------------- python


def _check_s3qbb_imports(tree: ast.AST, where: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "s3qbb":
            module = importlib.import_module(node.module)
            for alias in node.names:
                has = hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}")
                assert has, f"{where}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "s3qbb":
                    importlib.import_module(alias.name)


def check_python(block: Block, request: pytest.FixtureRequest) -> None:
    try:
        code = compile(block.text, block.where, "exec")
    except SyntaxError as err:
        pytest.fail(f"{block.where}: the Python example does not compile: {err}")
    tree = ast.parse(block.text)
    _check_s3qbb_imports(tree, block.where)
    if block.mode is not None:
        assert re.fullmatch(r"compile-only \(.+\)", block.mode), (
            f"{block.where}: unknown annotation 'code-check: {block.mode}'; "
            "the one known is 'code-check: compile-only (why it cannot run here)'"
        )
        return
    request.getfixturevalue("no_aws_environment")
    namespace: dict[str, Any] = {"__name__": f"docs_example_{block.page.stem}_{block.line}"}
    with preserved_logging():
        exec(code, namespace)
        for name, function in list(namespace.items()):
            if name.startswith("test_") and inspect.isfunction(function):
                fixtures = {p: request.getfixturevalue(p) for p in inspect.signature(function).parameters}
                function(**fixtures)


# ---------------------------------------------------------------- yaml, json


def check_repo_config(document: dict[str, Any], where: str) -> None:
    from s3qbb.repo import build_datastore, load_repo_config

    repo = load_repo_config(document)
    build_datastore(repo).close()  # builds templates, formatters and storage classes; no request


def check_yaml(block: Block, request: pytest.FixtureRequest) -> None:
    try:
        documents = [d for d in yaml.safe_load_all(block.text) if d is not None]
    except yaml.YAMLError as err:
        pytest.fail(f"{block.where}: invalid YAML: {err}")
    assert documents, f"{block.where}: empty YAML block"
    for document in documents:
        if isinstance(document, dict) and "datastore" in document:
            request.getfixturevalue("no_aws_environment")
            check_repo_config(document, block.where)
        for text in walk_strings(document):
            check_embedded_commands(text, block.where)
        for mapping in walk_dicts(document):
            check_exec_form(mapping.get("command"), block.where)
        check_env_entries(document, block.where)


_IAM_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts",
    "s3:GetBucketLocation",
    "kms:GenerateDataKey",
    "kms:Decrypt",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_iam_policy(document: dict[str, Any], where: str) -> None:
    assert document["Version"] == "2012-10-17", f"{where}: IAM policy version"
    statements = _as_list(document["Statement"])
    assert statements, f"{where}: a policy without statements"
    for statement in statements:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, f"{where}: {statement}"
        assert statement["Effect"] in ("Allow", "Deny"), f"{where}: Effect"
        unknown = [a for a in _as_list(statement["Action"]) if a not in _IAM_ACTIONS]
        assert not unknown, f"{where}: unknown IAM actions {unknown}"
        for resource in _as_list(statement["Resource"]):
            assert re.match(r"^arn:aws:(s3|kms):", resource), f"{where}: resource {resource!r}"


def check_lifecycle(document: dict[str, Any], where: str) -> None:
    for rule in document["Rules"]:
        assert rule["Status"] in ("Enabled", "Disabled") and isinstance(rule["ID"], str), f"{where}: {rule}"
        assert isinstance(rule.get("Filter", {}), dict), f"{where}: Filter"
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        assert isinstance(days, int) and days > 0, f"{where}: DaysAfterInitiation"


_SEAWEED_ACTION = re.compile(r"^(Admin|Read|Write|List|Tagging)(:[A-Za-z0-9._*/-]+)?$")


def check_seaweed_identity(identity: dict[str, Any], where: str) -> None:
    assert isinstance(identity["name"], str), f"{where}: identity name"
    bad = [a for a in identity["actions"] if not _SEAWEED_ACTION.match(a)]
    assert not bad, f"{where}: SeaweedFS actions {bad} are not Admin/Read/Write/List/Tagging[:scope]"
    for credential in identity.get("credentials", []):
        assert set(credential) == {"accessKey", "secretKey"}, f"{where}: credentials {credential}"


def check_batch_job(document: dict[str, Any], where: str) -> None:
    container = document["containerProperties"]
    assert isinstance(container["image"], str), f"{where}: image"
    commands = check_exec_form(container["command"], where) or sum(
        check_embedded_commands(part, where) for part in container["command"]
    )
    assert commands, f"{where}: the job runs no s3qbb command"
    check_env_entries(container.get("environment", []), where)


def check_json(block: Block, request: pytest.FixtureRequest) -> None:
    from s3qbb.batch.execution import QuantumOutcome, outcome_summary
    from s3qbb.provenance import QuantumExecutionReport, QuantumProvenanceData

    try:
        document = json.loads(block.text)
    except ValueError as err:
        pytest.fail(f"{block.where}: invalid JSON: {err}")
    where = block.where
    provenance_keys = set(QuantumProvenanceData.model_fields)
    if isinstance(document, dict):
        if "datastore" in document:
            request.getfixturevalue("no_aws_environment")
            check_repo_config(document, where)
        elif set(document) == provenance_keys:
            QuantumProvenanceData.from_json(block.text, source=where)
        elif document.get("format") == "s3qbb.quantum":
            QuantumExecutionReport.from_json(block.text, source=where)
        elif "exit_code" in document:
            assert set(document) == set(outcome_summary(QuantumOutcome(0, None))), f"{where}: outcome keys"
        elif "Statement" in document:
            check_iam_policy(document, where)
        elif "Rules" in document:
            check_lifecycle(document, where)
        elif "jobDefinitionName" in document:
            check_batch_job(document, where)
        elif "identities" in document:
            for identity in document["identities"]:
                check_seaweed_identity(identity, where)
        elif set(document) >= {"name", "actions"}:
            check_seaweed_identity(document, where)
    for text in walk_strings(document):
        check_embedded_commands(text, where)


# ---------------------------------------------------------------------- shell


_SUBSTITUTION = re.compile(r"\$\((?P<command>[^()]*)\)")
_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$", re.DOTALL)
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_REDIRECTIONS = {">", ">>", "<", "2>", "2>>", ">&", "2>&1", "&>"}
_AWS_COMMANDS = {
    ("batch", "submit-job"),
    ("batch", "register-job-definition"),
    ("s3api", "put-bucket-lifecycle-configuration"),
    ("s3", "mb"),
    ("s3", "ls"),
    ("s3", "cp"),
}


def simple_commands(command: str, where: str) -> list[list[str]]:
    """Split a shell command line into simple commands (lists of words); check substitutions on the way."""
    for substitution in _SUBSTITUTION.finditer(command):
        for inner in simple_commands(substitution["command"], where):
            check_simple_command(inner, where)
    command = _SUBSTITUTION.sub("SUBSTITUTED", command)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as err:
        pytest.fail(f"{where}: cannot parse shell command {command!r}: {err}")
    commands: list[list[str]] = [[]]
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token in _SEPARATORS:
            commands.append([])
        elif token in _REDIRECTIONS or re.fullmatch(r"\d?>>?(&\d)?", token):
            skip_next = not token.endswith(("&1", "&2"))
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def module_exists(module: str) -> bool:
    """Whether ``python -m module``, run from the repository root, finds the module.

    The repository's own packages (``benchmarks``) are looked up in it, since
    the working directory comes first on ``sys.path``; other modules where
    this interpreter finds them.
    """
    parts = module.split(".")
    if (ROOT / parts[0] / "__init__.py").is_file():
        base = ROOT.joinpath(*parts)
        return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()
    return importlib.util.find_spec(module) is not None


def _check_python_command(args: list[str], where: str) -> None:
    if not args:
        pytest.fail(f"{where}: an interactive 'python' is not an example")
    if args[0] == "-m":
        module = args[1]
        assert module_exists(module), f"{where}: no module {module} (python -m {module})"
        if module == "pip":
            _check_pip(args[2:], where)
    elif args[0] == "-c":
        compile(args[1], where, "exec")
    elif not args[0].startswith("-"):
        assert (ROOT / args[0]).is_file(), f"{where}: no script {args[0]}"


def _check_pip(args: list[str], where: str) -> None:
    assert args and args[0] == "install", f"{where}: only 'pip install' is documented"
    for arg in args[1:]:
        if arg.startswith("-"):
            continue
        match = re.fullmatch(r"(?P<name>s3qbb|\.)(\[(?P<extras>[^\]]*)\])?", arg)
        if match:
            extras = {e.strip() for e in (match["extras"] or "").split(",") if e.strip()}
            assert extras <= project_extras(), f"{where}: unknown extras {sorted(extras - project_extras())}"
        else:
            name = re.split(r"[\[<>=!~]", arg, maxsplit=1)[0].lower()
            assert name in project_requirements(), f"{where}: pip install {arg}: not a dependency of s3qbb"


def _check_pytest(args: list[str], where: str) -> None:
    takes_value = {"-m", "-k", "-n", "-p", "-o", "--maxfail", "--durations"}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            assert (ROOT / arg.split("::")[0]).exists(), f"{where}: pytest {arg}: no such test path"


def _check_weed(args: list[str], where: str) -> None:
    assert args, f"{where}: 'weed' needs a sub-command"
    help_text = weed_help(args[0])
    assert "Usage" in help_text or "Default Usage" in help_text, f"{where}: weed has no sub-command {args[0]}"
    for arg in args[1:]:
        if arg.startswith("-"):
            flag = arg.lstrip("-").split("=", 1)[0]
            assert re.search(rf"^\s+-{re.escape(flag)}\b", help_text, re.MULTILINE), (
                f"{where}: 'weed {args[0]}' has no flag -{flag}"
            )


def check_simple_command(words: list[str], where: str) -> list[str] | None:
    """Check one simple command; return the ``s3qbb`` arguments when it is an ``s3qbb`` command."""
    assigned: dict[str, str] = {}
    while words and (assignment := _ASSIGNMENT.match(words[0])):
        name = assignment["name"]
        assigned[name] = words[0].split("=", 1)[1]
        if name != COMPLETE_VAR:
            check_variable(name, where)
        words = words[1:]
    if not words:
        return None
    program, args = words[0], words[1:]
    name = Path(program).name
    if name == "s3qbb" and COMPLETE_VAR in assigned:
        _check_completion_script(assigned[COMPLETE_VAR], args, where)
        return None
    if name == "source":  # fish's `... | source`: the script comes from the pipe
        assert not args, f"{where}: source {shlex.join(args)}: only '| source' is checked"
        return None
    if name == "eval":  # eval "$(...)": the command substitution is checked on its own
        assert args == ["SUBSTITUTED"], f'{where}: eval {args}: only eval "$(...)" is checked'
        return None
    if name == "s3qbb":
        check_s3qbb_arguments(args, where)
        return args
    if name in ("python", "python3", "python3.11", "python3.12"):
        _check_python_command(args, where)
    elif name == "make":
        unknown = [t for t in args if not t.startswith("-") and "=" not in t and t not in make_targets()]
        assert args and not unknown, f"{where}: 'make {shlex.join(args)}': no target {unknown}"
    elif name in ("pip", "pip3"):
        _check_pip(args, where)
    elif name == "pytest":
        _check_pytest(args, where)
    elif name == "export":
        for arg in args:
            assignment = _ASSIGNMENT.match(arg)
            assert assignment, f"{where}: export {arg}"
            check_variable(assignment["name"], where)
    elif name == "aws":
        positional = [a for a in args if not a.startswith("-")]
        assert tuple(positional[:2]) in _AWS_COMMANDS, (
            f"{where}: unchecked AWS CLI command aws {shlex.join(args)}"
        )
    elif name == "docker":
        assert args[:2] == ["compose", "-f"], f"{where}: docker {shlex.join(args)}"
        assert (ROOT / args[2]).is_file(), f"{where}: no compose file {args[2]}"
        assert args[3] in ("up", "down", "ps", "logs", "pull"), f"{where}: docker compose {args[3]}"
    elif name == "weed":
        _check_weed(args, where)
    elif "/" in program and not program.startswith(("/", "$")):
        path = ROOT / program
        assert path.is_file() and os.access(path, os.X_OK), f"{where}: no executable {program}"
    else:
        pytest.fail(f"{where}: no checker for the command {program!r}; add one to {Path(__file__).name}")
    return None


def _check_completion_script(instruction: str, args: list[str], where: str) -> None:
    """Run ``s3qbb``'s shell completion as the page does; it must print a script for that shell."""
    from s3qbb.cli.main import main

    assert instruction.endswith("_source") and not args, f"{where}: {COMPLETE_VAR}={instruction} s3qbb {args}"
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # click writes bytes to a text stream's buffer
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv(COMPLETE_VAR, instruction)
        status = main([])
    out.flush()
    printed = out.buffer.getvalue().decode()
    assert status == 0 and "_s3qbb_completion" in printed, (
        f"{where}: {COMPLETE_VAR}={instruction} s3qbb printed no completion script (status {status})"
    )


def shell_lines(text: str, console: bool) -> list[tuple[str, list[str]]]:
    """Return ``(command, output lines)`` pairs; continuation lines are joined."""
    pairs: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if console and not line.startswith("$ "):
            if pairs:
                pairs[-1][1].append(line)
            continue
        command = line[2:] if console else line
        while command.rstrip().endswith("\\") and i < len(lines):
            command = command.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
        if command.strip() and not command.lstrip().startswith("#"):
            pairs.append((command, []))
    return pairs


def check_shell(block: Block, request: pytest.FixtureRequest) -> None:
    console = block.language in ("console", "shell-session")
    pairs = shell_lines(block.text, console)
    assert pairs, f"{block.where}: no command in a shell block"
    for command, _ in pairs:
        for words in simple_commands(command, block.where):
            check_simple_command(words, block.where)


# ----------------------------------------------------------------------- text


def _check_condor(text: str, where: str) -> None:
    settings: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^\s*(?P<key>[A-Za-z_+.]+)\s*=\s*(?P<value>.*)$", line)
        if match:
            settings[match["key"].lower()] = match["value"].strip()
    assert Path(settings["executable"]).name == "s3qbb", f"{where}: the submit file does not run s3qbb"
    arguments = re.sub(r"\$\((\w+)\)", r"\1.json", settings["arguments"])
    check_s3qbb_arguments(shlex.split(arguments), where)
    for assignment in shlex.split(settings.get("environment", "").strip('"')):
        check_variable(assignment.split("=", 1)[0], where)


_SHELL_WORDS = {"s3qbb", "make", "python", "python3", "pip", "pytest", "export", "aws", "docker", "weed"}


def check_text(block: Block, request: pytest.FixtureRequest) -> None:
    text = block.text
    if re.search(r"^\s*executable\s*=", text, re.MULTILINE) and re.search(r"^\s*queue\b", text, re.MULTILINE):
        _check_condor(text, block.where)
        return
    first = text.split()[0] if text.split() else ""
    assert first.lstrip("$") not in _SHELL_WORDS and not first.startswith("$"), (
        f"{block.where}: this literal block is a shell command: make it '.. code-block:: sh' so it is checked"
    )
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return  # a diagram or a listing, not code
    statements = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.With)
    assert not any(isinstance(node, statements) for node in ast.walk(tree)), (
        f"{block.where}: this literal block is Python: make it '.. code-block:: python' so it is run"
    )


# ------------------------------------------------------------- literalinclude


def check_literalinclude(block: Block, request: pytest.FixtureRequest) -> None:
    path = (block.page.parent / block.text).resolve()
    assert path.is_file(), f"{block.where}: literalinclude of a missing file {block.text}"
    relative = path.relative_to(ROOT)
    if "pyobject" in block.options:
        tree = ast.parse(path.read_text())
        names = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        head = block.options["pyobject"].split(".")[0]
        assert head in names, f"{block.where}: {relative} defines no {block.options['pyobject']}"
    if path.suffix != ".py":
        return
    if relative.parts[0] == "s3qbb":
        dotted = ".".join(relative.with_suffix("").parts)
        importlib.import_module(dotted)
        needle = dotted
    else:
        spec = importlib.util.spec_from_file_location(f"docs_include_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        needle = f'"{path.stem}"'
    users = [
        test
        for test in (ROOT / "tests").rglob("*.py")
        if test.resolve() != Path(__file__).resolve() and needle in test.read_text()
    ]
    assert users, f"{block.where}: no test imports {relative}; the included code must be tested"


# ------------------------------------------------------------------ dispatch


Checker = Callable[[Block, pytest.FixtureRequest], None]
CHECKERS: dict[str, Checker] = {
    "python": check_python,
    "py": check_python,
    "python3": check_python,
    "yaml": check_yaml,
    "yml": check_yaml,
    "json": check_json,
    "sh": check_shell,
    "bash": check_shell,
    "shell": check_shell,
    "console": check_shell,
    "shell-session": check_shell,
    "text": check_text,
    "none": check_text,
    "": check_text,
}


def checker_for(block: Block) -> Checker:
    """Return the checker of a block; fail, naming the page and line, when there is none."""
    if block.kind == "literalinclude":
        return check_literalinclude
    if block.kind not in ("code-block", "literal", "fence"):
        pytest.fail(
            f"{block.where}: no checker for '{block.kind}' blocks; use a '>>>' example or a "
            f"code-block with a checked language ({', '.join(sorted(filter(None, CHECKERS)))})"
        )
    checker = CHECKERS.get(block.language.lower())
    if checker is None:
        pytest.fail(
            f"{block.where}: no checker for language {block.language!r}; use one of "
            f"{', '.join(sorted(filter(None, CHECKERS)))} or add a checker to {Path(__file__).name}"
        )
    return checker


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_code_block(block: Block, request: pytest.FixtureRequest) -> None:
    checker_for(block)(block, request)


# ------------------------------------------------------------ console output


def _normalise(line: str) -> str:
    """Collapse spaces and replace measured numbers (not those inside IDs) by N."""
    line = re.sub(r"(?<![0-9A-Za-z-])\d+(\.\d+)?(?![0-9A-Za-z-])", "N", line)
    return " ".join(line.split())


def _registry_quanta() -> dict[str, Any]:
    """The quanta of the examples of registry.rst, with their dataset and quantum IDs."""
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum

    universe = DimensionUniverse()
    raw_type = DatasetType("raw", ["visit", "detector"], "StructuredDataDict", universe=universe)
    calexp_type = DatasetType("calexp", ["visit", "detector"], "StructuredDataDict", universe=universe)
    data_id = {"instrument": "Cam", "visit": 42, "detector": 1}
    raw = DatasetRef(raw_type, data_id, run="demo/raw", id=uuid.UUID(int=1))
    calexp = DatasetRef(calexp_type, data_id, run="demo/run", id=uuid.UUID(int=2))
    killed_outputs = [
        DatasetRef(calexp_type, {**data_id, "detector": d}, run="demo/run", id=uuid.UUID(int=d + 1))
        for d in (2, 3)
    ]
    return {
        "universe": universe,
        "raw": raw,
        "calexp": calexp,
        "make": Quantum(taskLabel="make", outputs=[raw], id=uuid.UUID(int=101)),
        "calibrate": (calexp, uuid.UUID(int=102)),
        "killed": (killed_outputs, uuid.UUID(int=103)),
    }


@contextlib.contextmanager
def registry_scenario() -> Iterator[None]:
    """What the shell examples of registry.rst assume: runs demo/raw and demo/run in s3://my-bucket/repo.

    One ``make`` and one ``calibrate`` quantum ran, and a second calibrate quantum
    was killed after writing one of its two outputs. The descriptions of both
    calibrate quanta are under ``s3://my-bucket/quanta/calibrate/``, and the
    repository configuration is ``s3://my-bucket/repo/butler.yaml``. The
    environment points the command at the moto server.
    """
    from s3qbb import Quantum, QuantumBackedButler
    from s3qbb.core.wire import quantum_to_simple
    from s3qbb.provenance import QuantumProvenanceData, provenance_key
    from s3qbb.repo import build_datastore, load_repo_config
    from s3qbb.testing.servers import MotoServer

    with MotoServer() as server:
        endpoint = server.endpoint("my-bucket")
        client = endpoint.client
        variables = {
            "S3QBB_S3_ENDPOINT_URL": endpoint.endpoint_url,
            "S3QBB_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": "docs",
            "AWS_SECRET_ACCESS_KEY": "docs",
        }
        with environment(variables):
            client.put_object(
                Bucket="my-bucket", Key="repo/butler.yaml", Body=b"datastore:\n  root: s3://my-bucket/repo\n"
            )
            config = {"datastore": {"root": "s3://my-bucket/repo", "endpoint": endpoint.config}}
            q = _registry_quanta()
            universe = q["universe"]
            with QuantumBackedButler.initialize(config, q["make"], universe) as butler:
                butler.put({"pixels": [10, 11, 12]}, q["raw"])
            key = "repo/" + provenance_key("demo/raw", q["make"].id)
            body = client.get_object(Bucket="my-bucket", Key=key)["Body"].read()
            records = QuantumProvenanceData.from_json(body).datastore_record_data()
            calexp, calibrate_id = q["calibrate"]
            calibrate = Quantum(
                taskLabel="calibrate",
                inputs=[q["raw"]],
                outputs=[calexp],
                id=calibrate_id,
                datastore_records=records,
            )
            with QuantumBackedButler.initialize(config, calibrate, universe) as butler:
                butler.put({"pixels": [p - 10 for p in butler.get(q["raw"])["pixels"]]}, calexp)
            outputs, killed_id = q["killed"]
            killed = Quantum(
                taskLabel="calibrate",
                inputs=[q["raw"]],
                outputs=outputs,
                id=killed_id,
                datastore_records=records,
            )
            datastore = build_datastore(load_repo_config(config))
            datastore.put({"pixels": [0, 1]}, outputs[0])
            datastore.close()
            for quantum in (calibrate, killed):
                description = quantum_to_simple(quantum).model_dump_json().encode()
                client.put_object(
                    Bucket="my-bucket", Key=f"quanta/calibrate/{quantum.id}.json", Body=description
                )
            yield


@contextlib.contextmanager
def pipeline_scenario() -> Iterator[None]:
    """What the shell examples of pipeline.rst assume: the graph of the page saved in s3://my-bucket.

    The repository configuration is ``s3://my-bucket/repo/butler.yaml``; the
    environment points the commands (and the ``run-quantum`` processes of
    ``s3qbb run``) at the moto server.
    """
    from s3qbb.demo import build_graph
    from s3qbb.testing.servers import MotoServer

    with MotoServer() as server:
        endpoint = server.endpoint("my-bucket")
        variables = {
            "S3QBB_S3_ENDPOINT_URL": endpoint.endpoint_url,
            "S3QBB_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": "docs",
            "AWS_SECRET_ACCESS_KEY": "docs",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        with environment(variables):
            endpoint.client.put_object(
                Bucket="my-bucket", Key="repo/butler.yaml", Body=b"datastore:\n  root: s3://my-bucket/repo\n"
            )
            graph, _ = build_graph("demo/run", "demo/raw", detectors=2)
            graph.save("s3://my-bucket/graphs/pipeline.qgraph", config=endpoint.config)
            yield


@contextlib.contextmanager
def quickstart_scenario() -> Iterator[None]:
    """What the command line of quickstart.rst assumes: the quick start's quantum ran in s3://my-bucket/repo.

    The dataset ID is the one the page shows; the environment points the command at the moto server.
    """
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler
    from s3qbb.testing.servers import MotoServer

    with MotoServer() as server:
        endpoint = server.endpoint("my-bucket")
        variables = {
            "S3QBB_S3_ENDPOINT_URL": endpoint.endpoint_url,
            "S3QBB_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": "docs",
            "AWS_SECRET_ACCESS_KEY": "docs",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        with environment(variables):
            config = {"datastore": {"root": "s3://my-bucket/repo", "endpoint": endpoint.config}}
            universe = DimensionUniverse()
            summary = DatasetType("summary", ["visit"], "StructuredDataDict", universe=universe)
            dataset_id = uuid.UUID("3f2c9a4e-6b1d-4c8e-9a57-0d2e8b1f4c6a")
            ref = DatasetRef(summary, {"instrument": "Cam", "visit": 42}, run="demo/run1", id=dataset_id)
            with QuantumBackedButler.initialize(
                config, Quantum(taskLabel="summarize", outputs=[ref]), universe
            ) as butler:
                butler.put({"mean": 1.5, "n": 3}, ref)
            yield


@contextlib.contextmanager
def running_scenario() -> Iterator[None]:
    """What the shell example of running.rst assumes: butler.yaml and quantum.json here, S3 at the endpoint.

    The quantum is the page's third ``ingest`` quantum, with the ID the page shows.
    """
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum
    from s3qbb.core.wire import quantum_to_simple
    from s3qbb.testing.servers import MotoServer

    with MotoServer() as server:
        endpoint = server.endpoint("my-bucket")
        variables = {
            "S3QBB_S3_ENDPOINT_URL": endpoint.endpoint_url,
            "S3QBB_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        with environment(variables):
            universe = DimensionUniverse()
            raw_type = DatasetType("raw", ["visit", "detector"], "NumpyArray", universe=universe)
            raw = DatasetRef(raw_type, {"instrument": "Cam", "visit": 1, "detector": 0}, run="raw3")
            third = Quantum(taskLabel="ingest", outputs=[raw], id=uuid.UUID(int=3))
            Path("butler.yaml").write_text("datastore:\n  root: s3://my-bucket/repo\n")
            Path("quantum.json").write_text(quantum_to_simple(third).model_dump_json())
            yield


SCENARIOS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "running": running_scenario,
    "quickstart": quickstart_scenario,
    "pipeline": pipeline_scenario,
    "registry": registry_scenario,
}
"""Pages whose ``console`` blocks are executed, and the state each page's commands expect."""


def run_s3qbb(argv: list[str]) -> tuple[int, str]:
    from s3qbb.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), preserved_logging():
        code = main(argv)
    return code, out.getvalue() + "\n" + err.getvalue()


@pytest.mark.parametrize("page", sorted(SCENARIOS))
def test_console_examples_run(page: str, no_aws_environment: None) -> None:
    blocks = [
        b
        for b in BLOCKS
        if b.page.stem == page and b.kind != "literalinclude" and b.language in ("console", "shell-session")
    ]
    assert blocks, f"docs/{page}: a scenario for a page without console examples"
    ran = 0
    with SCENARIOS[page]():
        for block in blocks:
            for command, expected in shell_lines(block.text, console=True):
                for words in simple_commands(command, block.where):
                    argv = check_simple_command(words, block.where)
                    if argv is None:
                        continue
                    code, output = run_s3qbb(argv)
                    shown = {_normalise(line) for line in re.split(r"[\r\n]", output)}
                    assert code == 0, f"{block.where}: s3qbb {shlex.join(argv)} exited with {code}:\n{output}"
                    missing = [line for line in expected if line.strip() and _normalise(line) not in shown]
                    assert not missing, (
                        f"{block.where}: s3qbb {shlex.join(argv)} did not print {missing}; "
                        f"it printed:\n{output}"
                    )
                    ran += 1
    assert ran


# ------------------------------------------------------------------- docstrings


def _documented_modules() -> list[str]:
    pattern = re.compile(r"^\.\. automodule::\s+(\S+)", re.MULTILINE)
    return sorted({m for page in PAGES for m in pattern.findall(page.read_text())})


@pytest.mark.parametrize("module_name", _documented_modules())
def test_docstring_examples(module_name: str, no_aws_environment: None) -> None:
    """The examples in the docstrings the API reference renders run, and none is skipped."""
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=DOCTEST_OPTIONS)
    skipped: list[str] = []
    for test in doctest.DocTestFinder().find(module, module_name):
        if any(example.options.get(doctest.SKIP) for example in test.examples):
            skipped.append(test.name)
        with preserved_logging():
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module_name} failed (see above)"
    unexpected = sorted(set(skipped) - KNOWN_SKIPPED_DOCSTRING_EXAMPLES)
    assert not unexpected, f"docstring examples marked +SKIP are never run: {unexpected}"


# ------------------------------------------------------------- the extraction


def test_blocks_are_found() -> None:
    """The extraction sees the kinds of blocks the pages have (it would otherwise check nothing)."""
    kinds = {(b.kind, b.language) for b in BLOCKS}
    assert ("code-block", "yaml") in kinds and ("literalinclude", "") in kinds
    assert any(b.kind == "literal" for b in BLOCKS)
    assert any(b.kind == "fence" and b.language == "python" for b in BLOCKS)


def test_unchecked_examples_fail(tmp_path: Path) -> None:
    """An unknown language, an unsupported directive or a literal shell command fails with page and line."""
    page = tmp_path / "new.rst"
    page.write_text(
        "Title\n=====\n\n.. code-block:: toml\n\n   a = 1\n\n.. parsed-literal::\n\n   make *demo*\n\n"
        "Run it::\n\n   s3qbb inspect q.sqlite3\n"
    )
    blocks = rst_blocks(page, page.read_text())
    assert [(b.line, b.kind, b.language) for b in blocks] == [
        (4, "code-block", "toml"),
        (8, "parsed-literal", ""),
        (12, "literal", ""),
    ]
    for block, message in zip(
        blocks, ["language 'toml'", "'parsed-literal' blocks", "shell command"], strict=True
    ):
        with pytest.raises(
            (pytest.fail.Exception, AssertionError), match=rf"new.rst:{block.line}: .*{re.escape(message)}"
        ):
            checker_for(block)(block, None)  # type: ignore[arg-type]
    markdown = tmp_path / "new.md"
    markdown.write_text(
        "# Title\n\n```ini\n[a]\n```\n\n<!-- code-check: compile-only (x) -->\n```python\nx = 1\n```\n"
    )
    fences = md_blocks(markdown, markdown.read_text())
    assert [(b.line, b.language, b.mode) for b in fences] == [
        (3, "ini", None),
        (8, "python", "compile-only (x)"),
    ]
    with pytest.raises(pytest.fail.Exception, match=re.escape("new.md:3: no checker for language 'ini'")):
        checker_for(fences[0])


def test_shell_checks_refuse_what_does_not_exist() -> None:
    where = "docs/x.rst:1"
    for command, message in [
        ("make no-such-target", "no target"),
        ("python -m benchmarks.no_such_module", "no module"),
        ("s3qbb run-quantum q.json", "refused by the s3qbb parser"),
        ("s3qbb ingest s3://b/r/run/ --no-such-option", "refused by the s3qbb parser"),
        ("export S3QBB_NO_SUCH_VARIABLE=1", "reads no variable"),
        ("pip install 's3qbb[no-such-extra]'", "unknown extras"),
        ("rm -rf /", "no checker for the command 'rm'"),
        ('url="$(localstack/no-such-script.sh)"', "no executable"),
    ]:
        with pytest.raises((pytest.fail.Exception, AssertionError), match=re.escape(message)):
            for words in simple_commands(command, where):
                check_simple_command(words, where)
