"""The dashboard's failed tasks: links to their replays, and how to replay one (a button
when the page has a token, else the command), every value escaped."""

from __future__ import annotations

from taskq.master.web import page

EVIL = "box-<b>&\"x"


def failed_row(**extra: object) -> dict[str, object]:
    return {"task_id": EVIL, "job": "j", "outcome": "raised", "ended": 0.0,
            "attempts": [], "replayed_as": [], "replay_of": "", "replayable": True, **extra}


def test_without_a_token_the_page_shows_the_command() -> None:
    html = page.replay_action(failed_row(), writable=False)
    assert "<code>taskq replay box-&lt;b&gt;&amp;&quot;x</code>" in html
    assert "<form" not in html and "<b>" not in html


def test_with_a_token_the_page_has_a_replay_button() -> None:
    html = page.replay_action(failed_row(), writable=True)
    assert 'method="post" action="/api/tasks/box-%3Cb%3E%26%22x/replay"' in html
    assert "<button>Replay</button>" in html


def test_replays_are_linked_both_ways_and_an_expired_call_has_no_action() -> None:
    html = page.replay_action(failed_row(replayed_as=["box-r1"], replayable=False), True)
    assert 'replayed as</span> <a href="#task/box-r1">box-r1</a>' in html
    assert "<form" not in html and "taskq replay" not in html
    html = page.replay_action(failed_row(replay_of="box-0", replayable=False), False)
    assert 'replay of</span> <a href="#task/box-0">box-0</a>' in html


def test_the_failed_list_carries_the_action() -> None:
    html = page.failed({"failed": [failed_row()]}, writable=True)
    assert html.count("<form") == 1
