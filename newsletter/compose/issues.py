"""Reading an issue folder: `issue.md` split into YAML front matter and Markdown, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from newsletter.compose.mergetags import MergeTagError, find_tags, line_of
from newsletter.compose.models import FrontMatter, Issue
from newsletter.errors import IssueError, Problem, UnreadableIssueError
from newsletter.validation import problems_from

ISSUE_FILE = "issue.md"
MAX_ISSUE_BYTES = 1_000_000  # an issue is read whole; a megabyte of Markdown is a book


def _split(text: str, path: Path) -> tuple[str, str, int]:
    """Front matter, body, and the line the body starts on."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise UnreadableIssueError(
            Problem(
                "must start with a '---' line opening the YAML front matter",
                path,
                1,
                code="yaml-syntax",
            )
        )
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            return "".join(lines[1 : number - 1]), "".join(lines[number:]), number + 1
    raise UnreadableIssueError(
        Problem(
            "front matter is not closed: add a '---' line after it", path, 1, code="yaml-syntax"
        )
    )


class _AliasRefused(Exception):
    """The front matter uses an alias (`*name`) on this line (0-based, of the front matter)."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


#: libyaml's parser where PyYAML was built with it (several times faster), else PyYAML's own.
_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Parser):  # type: ignore[misc,valid-type]
    """YAML's safe loader leaving dates as text: the model reads them, and a wrong one such as
    2026-13-24 is reported on its field instead of failing inside YAML."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _refuse_aliases(text: str) -> None:
    """Aliases are refused: a few bytes of `&a [*a, *a]` nest into billions of nodes (the
    "billion laughs"), and front matter never needs them. The event scan is cheap."""
    for event in yaml.parse(text, Loader=_Parser):
        if isinstance(event, yaml.AliasEvent):
            raise _AliasRefused(event.start_mark.line if event.start_mark else 0)


def _parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The front matter's data and its node tree (for line numbers), from one parse."""
    _refuse_aliases(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return (None if node is None else loader.construct_document(node)), node
    finally:
        loader.dispose()


def _node_lines(node: yaml.Node | None, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path of a composed YAML document to its 1-based line."""
    if node is None:
        return {}
    lines = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines |= _node_lines(value, path) | {path: key.start_mark.line + 1}
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines |= _node_lines(item, (*prefix, index))
    return lines


def _known_fields(loc: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] = FrontMatter
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        models = [a for a in inner if issubclass(a, BaseModel)]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)


def _strings(data: object, loc: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """Every text of the front matter with its key path: a merge tag may stand in any."""
    if isinstance(data, str):
        return [(loc, data)]
    if isinstance(data, dict):
        return [item for key, value in data.items() for item in _strings(value, (*loc, key))]
    if isinstance(data, list):
        return [item for index, value in enumerate(data) for item in _strings(value, (*loc, index))]
    return []


def _check_merge_tags(text: str, path: Path, first_line: int, field: str | None) -> None:
    try:
        find_tags(text)
    except MergeTagError as exc:
        line = first_line + line_of(text, exc.offset) - 1
        raise IssueError(Problem(str(exc), path, line, field, code="bad-merge-tag")) from None


def parse_issue(text: str, source: Path) -> Issue:
    """Parse the text of an issue.md; raise IssueError naming every problem found."""
    head, body, body_line = _split(text, source)
    try:
        data, node = _parse_yaml(head)
    except _AliasRefused as exc:
        raise UnreadableIssueError(
            Problem(
                "YAML aliases (*name) are not allowed here; write the value out",
                source,
                exc.line + 2,
                code="yaml-syntax",
            )
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise UnreadableIssueError(
            Problem(
                f"YAML syntax error: {reason}; check quotes and indentation",
                source,
                line,
                code="yaml-syntax",
            )
        ) from None
    data = data or {}
    if not isinstance(data, dict):
        raise UnreadableIssueError(
            Problem("front matter must be a mapping of field: value", source, 2, code="yaml-syntax")
        )
    try:
        front = FrontMatter(**data)
    except ValidationError as exc:
        lines = _node_lines(node)

        def line_for(loc: tuple[str | int, ...]) -> int | None:
            while loc not in lines and loc:
                loc = loc[:-1]
            return lines.get(loc, 0) + 1

        raise IssueError(*problems_from(exc, source, _known_fields, line_for)) from None
    lines = _node_lines(node)
    for loc, value in _strings(data):
        _check_merge_tags(value, source, lines.get(loc, 0) + 1, ".".join(map(str, loc)))
    _check_merge_tags(body, source, body_line, None)
    folder = source.parent
    return Issue(
        **front.model_dump(),
        slug=folder.name,
        folder=folder,
        source=source,
        body=body,
        body_line=body_line,
    )


def issue_file(folder: Path) -> Path:
    """`folder/issue.md`, or `folder` itself when it is the file."""
    return folder if folder.is_file() else folder / ISSUE_FILE


def load_issue(folder: Path) -> Issue:
    """Read and validate `folder/issue.md` (a path to issue.md itself is accepted too)."""
    source = issue_file(folder)
    if not source.is_file():
        hint = "create it with 'newsletter new TITLE'" if not folder.exists() else "add it"
        raise UnreadableIssueError(
            Problem(f"no {ISSUE_FILE} here; {hint}", source, code="unreadable-file")
        )
    try:
        too_large = source.stat().st_size > MAX_ISSUE_BYTES
        if not too_large:
            with source.open(encoding="utf-8") as file:
                text = file.read(MAX_ISSUE_BYTES + 1)  # bounded, should the file grow meanwhile
            too_large = len(text) > MAX_ISSUE_BYTES
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableIssueError(
            Problem(f"cannot read it as UTF-8 text: {exc}", source, code="not-utf8")
        ) from None
    if too_large:
        raise UnreadableIssueError(
            Problem(
                f"is larger than {MAX_ISSUE_BYTES // 1_000_000} MB; an issue is one email, "
                "so shorten it or split it into several issues",
                source,
                code="file-too-large",
            )
        )
    return parse_issue(text, source)


def find_issues(root: Path) -> list[Path]:
    """Every folder directly under `root/issues/` that holds an issue.md, by name."""
    return sorted(source.parent for source in (root / "issues").glob(f"*/{ISSUE_FILE}"))


def project_folders(root: Path) -> list[Path]:
    """The folders that no output may replace: the project itself and each of its issues."""
    return [root, *find_issues(root)]
