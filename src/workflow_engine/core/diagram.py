"""Mermaid ``stateDiagram-v2`` text for a workflow, as GitHub and most doc tools render it."""

from __future__ import annotations

from .definitions import StateSpec, Workflow

__all__ = ["mermaid"]


def _label(text: str) -> str:
    # Mermaid has no escaping for quotes or line breaks in labels; its entity codes do.
    # ";" first: the entity codes themselves end in ";".
    return " ".join(text.split()).replace(";", "#59;").replace('"', "#quot;")


def _fork(state: StateSpec, alias: str) -> list[str]:
    """A fork's branches, as the concurrent regions of its state."""
    if state.block is None or state.block.type != "branches":
        return []
    branches = [b for b in state.block.params.get("branches", ()) if isinstance(b, dict)]
    lines = [f"    state {alias} {{"]
    for index, branch in enumerate(branches):
        if index:
            lines.append("        --")
        block = branch.get("block") or {}
        lines.append(f"        {alias}_b{index} : "
                     f"{_label(str(branch.get('name') or branch.get('id')))} "
                     f"({_label(str(block.get('type')))})")
    lines.append("    }")
    return lines


def mermaid(workflow: Workflow) -> str:
    """Render the workflow: initial and final states joined to ``[*]``, disabled ones styled.

    State ids may hold ``.`` and ``-``, which Mermaid does not accept as ids, so every
    state is declared under a positional alias with its name as the label.
    """
    alias = {state.id: f"s{index}" for index, state in enumerate(workflow.spec.states)}
    lines = ["stateDiagram-v2"]
    for state in workflow.spec.states:
        lines.append(f'    state "{_label(state.name)} ({state.id})" as {alias[state.id]}')
    for state in workflow.spec.states:
        lines.extend(_fork(state, alias[state.id]))
    lines.append(f"    [*] --> {alias[workflow.initial_state.id]}")
    for action in workflow.spec.actions:
        label = _label(action.name) + ("" if action.enabled else " (disabled)")
        for source in action.from_states:
            lines.append(f"    {alias[source]} --> {alias[action.to_state]} : {label}")
    for state in workflow.spec.states:
        if state.block is not None and state.on_error is not None:
            lines.append(f"    {alias[state.id]} --> {alias[state.on_error]} : on error")
    for state in workflow.spec.states:
        if state.is_final:
            lines.append(f"    {alias[state.id]} --> [*]")
    disabled = [alias[state.id] for state in workflow.spec.states if not state.enabled]
    if disabled:
        lines.append("    classDef disabled fill:#eeeeee,color:#888888,stroke-dasharray:5 5")
        lines.append(f"    class {','.join(disabled)} disabled")
    finals = [alias[state.id] for state in workflow.spec.states if state.is_final]
    if finals:
        lines.append("    classDef final font-weight:bold,stroke-width:3px")
        lines.append(f"    class {','.join(finals)} final")
    return "\n".join(lines) + "\n"
