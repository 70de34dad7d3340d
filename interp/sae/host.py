"""SAELens's habits on interp's model: `model.saes(...)`, `run_with_saes`, `run_with_cache_with_saes`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from interp.sae.sae import SAE
from interp.sae.splice import splice


class SAEHost:
    """Mixed into `HookedTransformer`; every method is scoped: no dictionary stays spliced after it returns."""

    @contextmanager
    def saes(self, saes: SAE | Sequence[SAE], use_error_term: bool = False) -> Iterator[Any]:
        """Splice dictionaries for the block (this thread or task only); see `interp.sae.splice`."""
        with splice(self, [saes] if isinstance(saes, SAE) else saes, use_error_term=use_error_term):  # type: ignore[arg-type]
            yield self

    def run_with_saes(
        self, input: Any, saes: SAE | Sequence[SAE] = (), use_error_term: bool = False, **kwargs: Any
    ) -> Any:
        with self.saes(saes, use_error_term=use_error_term):
            return self(input, **kwargs)  # type: ignore[operator]

    def run_with_cache_with_saes(
        self, input: Any, saes: SAE | Sequence[SAE] = (), use_error_term: bool = False, **kwargs: Any
    ) -> Any:
        with self.saes(saes, use_error_term=use_error_term):
            return self.run_with_cache(input, **kwargs)  # type: ignore[attr-defined]
