"""The console's one bounded least-recently-used cache (event pages, rendered lines).

An ``OrderedDict`` underneath: its moves and pops are C, cheaper per lookup than a linked list in
Python, and the render paths look up once per row per frame.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class LRU(Generic[K, V]):
    """At most ``maxsize`` entries; storing one more drops the least recently used. ``get`` is a
    use, ``peek`` is not (a change pushed into a cached entry must not save it from eviction at
    the expense of one that is being read)."""

    __slots__ = ("_items", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("an LRU holds at least one entry")
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        items = self._items
        try:
            value = items[key]
        except KeyError:
            return default
        items.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        return self._items.get(key)

    def __setitem__(self, key: K, value: V) -> None:
        items = self._items
        items[key] = value
        items.move_to_end(key)
        while len(items) > self.maxsize:  # more than one after ``maxsize`` shrank
            items.popitem(last=False)

    def set(self, key: K, value: V) -> None:
        self[key] = value

    def clear(self) -> None:
        self._items.clear()
