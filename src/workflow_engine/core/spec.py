"""The base of every document model the engine validates, and its shared field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

__all__ = [
    "ID_PATTERN",
    "Description",
    "Identifier",
    "Name",
    "SpecModel",
]

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 4000



def _not_only_dots(value: str) -> str:
    # "." and ".." match the pattern but a URL path cannot carry them as a segment.
    if value.strip(".") == "":
        raise PydanticCustomError("invalid_id", "An id cannot be made of dots only.")
    return value


Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(_not_only_dots)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH)]


class SpecModel(BaseModel):
    """Strict, immutable, unknown fields refused, camelCase accepted on input."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=False,
    )
