"""Aliases: named pointers to a version, optionally splitting traffic with a second one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from brazier.model.arns import function_arn


@dataclass(frozen=True, slots=True)
class Alias:
    account: str
    region: str
    function: str
    name: str
    version: str
    description: str = ""
    weights: Mapping[str, float] = field(default_factory=dict)  # AdditionalVersionWeights
    revision_id: str = ""

    @property
    def arn(self) -> str:
        return function_arn(self.region, self.account, self.function, self.name)

    def pick(self, draw: float) -> str:
        """The version an invocation runs, for a uniform draw in [0, 1)."""
        for version, weight in self.weights.items():
            if draw < weight:
                return version
        return self.version
