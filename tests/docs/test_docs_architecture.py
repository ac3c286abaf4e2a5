"""The architecture diagram cannot drift: the committed SVG is what its script draws now, every box names
a package or module that exists, and the architecture page shows it."""
import importlib.util
import pathlib
import re
import xml.etree.ElementTree as ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
SVG = "{http://www.w3.org/2000/svg}"


def diagram_script():
    spec = importlib.util.spec_from_file_location("make_architecture_diagram", IMAGES / "make_architecture_diagram.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_svg_is_what_the_script_draws_now():
    committed = (IMAGES / "architecture.svg").read_text()
    assert committed == diagram_script().render(), (
        "docs/images/architecture.svg is out of date: run python docs/images/make_architecture_diagram.py")


def test_the_check_option_notices_a_stale_file(tmp_path):
    script = diagram_script()
    stale = tmp_path / "architecture.svg"
    stale.write_text(script.render().replace("iterators", "loaders"))
    assert script.main(["--check", "--output", str(stale)]) == 1
    assert script.main(["--output", str(stale)]) == 0 and script.main(["--check", "--output", str(stale)]) == 0


def test_boxes_follow_the_data_flow_and_name_packages_that_exist():
    boxes = diagram_script().BOXES
    assert [box.title for box in boxes] == [
        "sources", "extractors", "preprocessors", "datasets", "iterators", "trainer", "operator", "workers",
        "network on backend", "optimiser", "hooks", "monitors"]
    for box in boxes:
        assert box.paths, f"the box {box.title!r} names no package"
        for path in box.paths:
            target = ROOT / path
            if path.endswith("/"):
                assert (target / "__init__.py").is_file(), f"{box.title!r} names {path}, which is not a package"
            else:
                assert target.is_file() and path.endswith(".py"), f"{box.title!r} names {path}, not a module"


def test_svg_is_well_formed_and_shows_every_box_and_arrow():
    script = diagram_script()
    root = ElementTree.fromstring(script.render())
    texts = [element.text for element in root.iter(f"{SVG}text")]
    for box in script.BOXES:
        assert box.title in texts and box.does in texts
        assert all(path in texts for path in box.paths)
    assert len(root.findall(f"{SVG}line")) == len(script.BOXES) - 1
    assert len(root.findall(f"{SVG}rect")) == len(script.BOXES) + len(script.LAYERS) + 1  # boxes, legend, page
    # no two boxes overlap
    corners = [script.box_position(index) for index in range(len(script.BOXES))]
    assert len(set(corners)) == len(corners)


def test_architecture_page_shows_the_diagram():
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert re.search(r"!\[[^\]]+\]\(images/architecture\.svg\)", page)
