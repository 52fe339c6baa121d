"""The one duration grammar: unit letters, unit words, plain seconds."""

from __future__ import annotations

import pytest

from taskq.protocol.options import parse_duration


@pytest.mark.parametrize("text,seconds", [
    ("10m", 600), ("10 minutes", 600), ("1 minute", 60), ("10min", 600), ("1h30m", 5400),
    ("1 hour 30 mins", 5400), ("2 hrs", 7200), ("3 secs", 3), ("45 seconds", 45),
    ("250ms", 0.25), ("2 milliseconds", 0.002), ("2 days", 172800), ("1 week", 604800),
    ("12.5", 12.5), ("2W", 1209600),
])
def test_durations_with_unit_letters_or_words(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10 parsecs", "minutes", "10 mo", "1x", "10 m s x", ""])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)
