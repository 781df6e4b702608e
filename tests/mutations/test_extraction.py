"""The line map: every rendered block line points at the page line and the
tree file line it came from."""

from harness.model import Mode

from mutations import fixture


def test_blocks_modes_and_origins(fixture_base):
    blocks = fixture.context(fixture_base).blocks
    assert [(b.lang, b.mode) for b in blocks] == [
        ("yaml", Mode.MANIFESTS), ("bash", Mode.LOCAL), ("text", Mode.OUTPUT), ("bash", Mode.STATIC)
    ]
    yaml_block, local, output, indented = blocks
    # included section: markers gone, lines mapped to the tree file
    assert yaml_block.text == "data:\n  greeting: hello"
    assert str(yaml_block.location(1)) == f"{fixture.PAGE}:{fixture.YAML_INCLUDE_LINE} (harness-fixture/app.yaml:7)"
    assert yaml_block.included == ["harness-fixture/app.yaml"]
    # front matter and Jinja do not shift page lines
    assert local.fence.line == fixture.LOCAL_FENCE_LINE
    assert str(output.location(0)) == f"{fixture.PAGE}:{fixture.OUTPUT_FIRST_LINE}"
    assert local.options == {"timeout": "20"}
    # a fence indented in an admonition, holding an include
    assert indented.text == 'name="${1:-world}"\necho "hello, ${name}"'
    assert str(indented.location(1)) == f"{fixture.PAGE}:{fixture.SCRIPT_INCLUDE_LINE} (harness-fixture/greet.sh:5)"


def test_text_is_what_the_site_renders(fixture_base):
    """The expanded page equals what mkdocs' own Markdown preprocessing of
    the page produces (macros, then snippets)."""
    from harness import extract

    site = extract.load_site(fixture_base)
    page = fixture_base / fixture.PAGE
    ours = [line.text for line in extract.expand_page(site, page)]
    rendered, _, _ = extract.render_macros(site, page)
    site.snippets.seen = set()
    theirs = site.snippets.run(list(rendered))
    assert ours == theirs
    assert "2." in "\n".join(ours[:4])  # {{ versions.flux.version }} was rendered
