"""The live paths' one coalescer: the first item after a quiet spell at once, a burst as one batch
no sooner than the rate allows."""

from __future__ import annotations

import time

from textual.app import App

from sessionscope.tui.coalesce import Coalescer

DEADLINE = 15.0


async def test_leading_edge_then_at_most_hz() -> None:
    app: App[None] = App()
    applied: list[tuple[float, list[str]]] = []
    async with app.run_test() as pilot:
        live: Coalescer[str] = Coalescer(
            app, lambda items: applied.append((time.monotonic(), items)), hz=5, name="test"
        )
        live.add("a")
        deadline = time.monotonic() + DEADLINE
        while not applied:
            assert time.monotonic() < deadline, "the first item was never applied"
            await pilot.pause(0.01)
        assert applied[0][1] == ["a"]
        for item in ("b", "c", "d"):
            live.add(item)
        while len(applied) < 2:
            assert time.monotonic() < deadline, "the burst was never applied"
            await pilot.pause(0.01)
        assert applied[1][1] == ["b", "c", "d"]
        assert applied[1][0] - applied[0][0] >= 0.2 * 0.99  # at most 5 a second
        assert len(live) == 0


async def test_without_leading_edge_every_batch_waits_one_interval() -> None:
    app: App[None] = App()
    applied: list[tuple[float, list[str]]] = []
    async with app.run_test() as pilot:
        live: Coalescer[str] = Coalescer(
            app,
            lambda items: applied.append((time.monotonic(), items)),
            hz=5,
            name="test",
            leading=False,
        )
        added_at = time.monotonic()
        live.add("a")
        live.add("b")
        deadline = added_at + DEADLINE
        while not applied:
            assert time.monotonic() < deadline, "the batch was never applied"
            await pilot.pause(0.01)
        assert applied[0][1] == ["a", "b"]
        assert applied[0][0] - added_at >= 0.2 * 0.99
