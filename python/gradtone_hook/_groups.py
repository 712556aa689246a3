"""Naming and grouping of parameters, for every hook (PyTorch, JAX/optax, Keras).

A parameter is named by its path with ``.`` between the parts (``Dense_0.kernel``) and, with
``group_by="module"``, belongs to the module named by its path without the last part
(``Dense_0``): the rule :class:`gradtone_hook.GradTone` applies to ``named_parameters()``.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

GroupBy = Union[str, Callable[[str], Optional[str]]]


def check_group_by(group_by: GroupBy) -> None:
    """Raise ``ValueError`` for anything but ``"module"``, ``"tensor"`` or a callable."""
    if not (group_by in ("module", "tensor") or callable(group_by)):
        raise ValueError(f"group_by must be 'module', 'tensor' or a callable, got {group_by!r}")


def group_of(name: str, group_by: GroupBy = "module") -> str | None:
    """The value name ``name`` contributes to (``None``: left out)."""
    if group_by == "tensor":
        return name
    if group_by == "module":
        return name.rpartition(".")[0] or name
    g = group_by(name)  # type: ignore[operator]
    return None if g is None else str(g)


def plan(names: Sequence[str], group_by: GroupBy = "module") -> tuple[list[str], list[int]]:
    """The group names in first-seen order, and for each of ``names`` its group's index (-1 when
    ``group_by`` leaves it out)."""
    groups: list[str] = []
    index: dict[str, int] = {}
    member: list[int] = []
    for n in names:
        g = group_of(n, group_by)
        if g is None:
            member.append(-1)
            continue
        if g not in index:
            index[g] = len(groups)
            groups.append(g)
        member.append(index[g])
    return groups, member
