from sessionscope.tui.safe import neutralise, one_line, plain


def test_markup_is_literal() -> None:
    text = plain("[bold]x[/bold] [@click=app.quit]quit[/]")
    assert text.plain == "[bold]x[/bold] [@click=app.quit]quit[/]"
    assert not text.spans


def test_ansi_and_controls_are_neutralised() -> None:
    value = neutralise("a\x1b[2Jb\x07c\x9bd\u202ee\tf\ng")
    assert "\x1b" not in value and "\x07" not in value and "\x9b" not in value
    assert "\u202e" not in value
    assert value.startswith("a␛[2Jb␇c")
    assert "\t" in value and "\n" in value


def test_one_line_flattens_and_clips() -> None:
    assert "\n" not in one_line("a\nb")
    assert len(one_line("x" * 1000, limit=50)) == 50


def test_huge_line_is_clipped() -> None:
    text = plain("y" * 1_000_000)
    assert len(text.plain) < 20_000
    assert "more characters" in text.plain
