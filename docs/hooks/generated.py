"""Pages made at build time from the code, so they never drift from it.

`<!-- generated: cli -->` in a page becomes the reference of every `taskq` command (its help,
arguments and options, as `--help` gives them), walked from the command line's own
definition; `<!-- generated: defaults -->` becomes the table of `taskq/defaults.py`: each
constant, its value and the comment beside it, which is the reason for that value.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = ROOT / "taskq" / "defaults.py"
MARKER = re.compile(r"^<!-- generated: (?P<what>[a-z]+) -->$", re.M)
SEPARATOR = re.compile(r"^-{10,}\s*(?P<title>.*)$")


def cell(text: str) -> str:
    """Text that stays inside one markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


# ----------------------------------------------------------------------------- the CLI
def cli_reference() -> str:
    import typer.main

    from taskq.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="taskq")
    return "\n".join(command_markdown(root, ctx, level=2)).strip() + "\n"


def command_markdown(command: Any, ctx: Any, level: int) -> list[str]:
    out = [f"{'#' * level} `{ctx.command_path}`", ""]
    help_text = inspect.cleandoc(command.help or "")
    if help_text:
        out += [help_text, ""]
    out += ["```text", command.get_usage(ctx), "```", "", *parameter_tables(command, ctx)]
    subcommands = getattr(command, "commands", None)  # a group: its commands follow
    if subcommands:
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            out += command_markdown(sub, sub_ctx, min(level + 1, 4))
    return out


def parameter_tables(command: Any, ctx: Any) -> list[str]:
    """A table of the command's arguments and one of its options, as --help lists them."""
    arguments, options, out = [], [], []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            arguments.append(argument_row(param, ctx))
        else:
            record = param.get_help_record(ctx)
            if record is not None:
                options.append(f"| `{cell(record[0])}` | {cell(record[1])} |")
    if arguments:
        out += ["| argument | required | meaning |", "|---|---|---|", *arguments, ""]
    if options:
        out += ["| option | meaning |", "|---|---|", *options, ""]
    return out


def argument_row(param: Any, ctx: Any) -> str:
    name = (param.metavar or param.name or "").upper()
    if param.nargs == -1:
        name += "..."
    return f"| `{name}` | {'yes' if param.required else 'no'} | {cell(param.help or '')} |"


# ------------------------------------------------------------------------ the defaults
def defaults_reference() -> str:
    """One table per section of defaults.py (sections start at a `# ----- title` line); a
    comment block and the constants right below it, with no blank line, make one row."""
    source = DEFAULTS.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    sections: list[tuple[str, list[tuple[list[str], list[str], str]]]] = [("General", [])]
    previous_end = -1
    for node in tree.body:
        names, value = definition(node, source)
        if not names:
            continue
        title, comment = comment_above(lines, node.lineno - 1)
        if title:
            sections.append((title, []))
        comment += inline_comment(lines[node.end_lineno - 1]) if node.end_lineno else ""
        rows = sections[-1][1]
        if not comment and not title and rows and previous_end == node.lineno - 1:
            rows[-1][0].extend(names)  # one comment for a run of constants
            rows[-1][1].append(value)
        else:
            rows.append((names, [value], " ".join(comment)))
        previous_end = node.end_lineno or node.lineno
    out = []
    for title, rows in sections:
        if not rows:
            continue
        out += [f"## {title}", "", "| name | value | why |", "|---|---|---|"]
        for names, values, why in rows:
            out.append(f"| {'<br>'.join(f'`{n}`' for n in names)} | "
                       f"{'<br>'.join(values)} | {cell(why)} |")
        out.append("")
    return "\n".join(out)


def definition(node: ast.stmt, source: str) -> tuple[list[str], str]:
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
        segment = ast.get_source_segment(source, node.value) if node.value else ""
        return names, f"`{cell(segment or '')}`"
    if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
        doc = ast.get_docstring(node) or ""
        return [f"{node.name}()"], cell(doc)
    return [], ""


def comment_above(lines: list[str], index: int) -> tuple[str, list[str]]:
    """The comment lines right above line ``index`` (0-based), and a section title among
    them, if any."""
    block: list[str] = []
    i = index - 1
    while i >= 0 and lines[i].lstrip().startswith("#"):
        block.insert(0, lines[i].strip()[1:].strip())
        i -= 1
    title = ""
    for j, text in enumerate(block):
        m = SEPARATOR.match(text)
        if m:
            title = m["title"].strip().capitalize() or "More"
            block = block[j + 1:]
            break
    return title, block


def inline_comment(line: str) -> list[str]:
    if "#" not in line:
        return []
    comment = line.split("#", 1)[1].strip()
    return [re.sub(r"^noqa: \S+\s*", "", comment).strip("() ")] if comment else []


GENERATORS = {"cli": cli_reference, "defaults": defaults_reference}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs hook: replace each generation marker in a page with what it names."""
    def replace(match: re.Match[str]) -> str:
        return GENERATORS[match["what"]]()

    return MARKER.sub(replace, markdown)
