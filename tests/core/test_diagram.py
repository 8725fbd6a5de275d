"""The Mermaid diagram."""

from __future__ import annotations

from tests.conftest import approval
from workflow_engine import core
from workflow_engine.core import Workflow
from workflow_engine.core.diagram import mermaid


def test_marks_initial_final_and_disabled_states() -> None:
    """Initial and final states join [*]; disabled states and actions are marked."""
    text = mermaid(Workflow(core.validate_definition(approval()).spec, 1))
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert '    state "Draft (draft)" as s0' in lines
    assert "    [*] --> s0" in lines
    assert "    s0 --> s1 : Submit" in lines
    assert "    s1 --> s2 : Escalate (disabled)" in lines
    assert {"    s2 --> [*]", "    s3 --> [*]", "    s4 --> [*]"} <= set(lines)
    assert "    class s4 disabled" in lines


def test_on_error_edges_are_drawn() -> None:
    document = approval()
    document["states"][1]["block"] = {"type": "sleep", "params": {}}
    document["states"][1]["on_error"] = "rejected"
    spec = core.DefinitionSpec.model_validate(document)
    assert "    s1 --> s3 : on error" in mermaid(Workflow(spec, 1)).splitlines()


def test_labels_cannot_break_the_diagram() -> None:
    """Quotes, semicolons and line breaks in names are encoded, not passed through."""
    document = approval()
    document["states"][0]["name"] = 'Say "hi";\nthen go'
    text = mermaid(Workflow(core.validate_definition(document).spec, 1))
    assert '    state "Say #quot;hi#quot;#59; then go (draft)" as s0' in text.splitlines()
