"""A collapsible JSON tree whose children are built when a node is first expanded, so a large
document costs only what the operator opens."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from sessionscope.tui.safe import one_line

#: Children shown under one node; the rest are summarised.
MAX_CHILDREN = 500
#: Levels expanded when the tree opens.
OPEN_DEPTH = 2


def summary(value: Any) -> Text:
    """A one-line view of a JSON value, styled by type, never parsed as markup."""
    if isinstance(value, dict):
        return Text(f"{{…}} {len(value)} key{'s' if len(value) != 1 else ''}", style="dim")
    if isinstance(value, list):
        return Text(f"[…] {len(value)} item{'s' if len(value) != 1 else ''}", style="dim")
    if isinstance(value, str):
        return Text(one_line(json.dumps(value, ensure_ascii=False), 160), style="green")
    if isinstance(value, bool) or value is None:
        return Text(json.dumps(value), style="italic magenta")
    return Text(json.dumps(value), style="cyan")


def node_label(key: str | int | None, value: Any) -> Text:
    label = Text(end="")
    if isinstance(key, str):
        label.append(one_line(key, 80), style="bold")
        label.append(": ")
    elif isinstance(key, int):
        label.append(f"[{key}]", style="bold dim")
        label.append(" ")
    label.append_text(summary(value))
    return label


def _is_container(value: Any) -> bool:
    return isinstance(value, dict | list) and len(value) > 0


class JsonTree(Tree[Any]):
    """Tree of a parsed JSON value. Node data is the value; a node's children are added on
    first expansion."""

    DEFAULT_CSS = """
    JsonTree {
        height: 1fr;
    }
    """

    def __init__(self, value: Any, *, id: str | None = None) -> None:
        super().__init__(node_label(None, value), data=value, id=id)
        self._populated: set[int] = set()
        self.show_root = True
        self.guide_depth = 3

    def on_mount(self) -> None:
        self._populate(self.root)
        self.root.expand()
        self._open(self.root, OPEN_DEPTH - 1)

    def _open(self, node: TreeNode[Any], depth: int) -> None:
        if depth <= 0:
            return
        for child in node.children:
            if child.allow_expand:
                self._populate(child)
                child.expand()
                self._open(child, depth - 1)

    def _populate(self, node: TreeNode[Any]) -> None:
        if node.id in self._populated:
            return
        self._populated.add(node.id)
        value = node.data
        items: list[tuple[str | int, Any]]
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        else:
            return
        for key, child in items[:MAX_CHILDREN]:
            label = node_label(key, child)
            if _is_container(child):
                node.add(label, data=child)
            else:
                node.add_leaf(label, data=child)
        if len(items) > MAX_CHILDREN:
            node.add_leaf(
                Text(f"… {len(items) - MAX_CHILDREN:,} more not shown", style="dim italic")
            )

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Any]) -> None:
        self._populate(event.node)
