"""Hook points and scoped hook registration.

A `HookPoint` is an identity module placed on every named activation; its name is its module path
(`blocks.3.attn.hook_pattern`). Hooks are plain functions `fn(activation, hook) -> activation | None`.

Hooks are only ever attached through `HookedRootModule.hooks(...)` (a context manager) or the `run_with_*`
calls built on it, and are detached in `finally`, so an exception inside a hook or the forward never leaves
one behind. There is no process-wide registry and no permanent hook.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from torch import Tensor, nn

HookFn = Callable[[Tensor, "HookPoint"], Tensor | None]
NameFilter = str | Sequence[str] | Callable[[str], bool] | None


class HookShapeError(ValueError):
    """A hook returned a tensor whose shape differs from the activation it replaced."""


class HookPoint(nn.Module):
    """Identity on the forward pass; runs the hooks attached to it, in order.

    `__call__` is overridden (rather than `forward`) because nn.Module's call machinery costs
    microseconds per call, and a 12-layer model has hundreds of hook points: the no-hook path must be
    a single attribute check.
    """

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # set by HookedRootModule.setup_hooks to the module path
        self._fwd: list[HookFn] = []
        self._bwd: list[_BackwardHook] = []

    @property
    def active(self) -> bool:
        """True when any hook is attached; modules use it to pick the explicit (hookable) code path."""
        return bool(self._fwd or self._bwd)

    def __call__(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if not (self._fwd or self._bwd):
            return x
        for fn in self._fwd:
            out = fn(x, self)
            if out is not None:
                if not isinstance(out, Tensor) or out.shape != x.shape:
                    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise HookShapeError(
                        f"hook {getattr(fn, '__name__', fn)!r} on {self.name} returned {got}; "
                        f"it must return None or a tensor of the activation's shape {tuple(x.shape)}"
                    )
                x = out
        if x.requires_grad:
            for bwd in self._bwd:
                x.register_hook(bwd)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self(x)

    def extra_repr(self) -> str:
        return self.name


@dataclass
class _BackwardHook:
    """A gradient hook that stops firing once its scope has closed (tensor hooks outlive modules)."""

    fn: HookFn
    point: HookPoint
    live: bool = True

    def __call__(self, grad: Tensor) -> Tensor | None:
        if not self.live:
            return None
        out = self.fn(grad, self.point)
        if out is not None and out.shape != grad.shape:
            raise HookShapeError(
                f"backward hook on {self.point.name} returned shape {tuple(out.shape)}; "
                f"expected {tuple(grad.shape)}"
            )
        return out


HookSpec = tuple[str | Callable[[str], bool], HookFn]

# Hook points that exist only inside a scope of this thread or task (an SAE's points while it is spliced):
# model id -> {name: point}. Not submodules, so other threads' forwards never run through them.
_OVERLAY: ContextVar[dict[int, dict[str, HookPoint]] | None] = ContextVar("interp_hook_overlay", default=None)


class HookedRootModule(nn.Module):
    """Base for models with hook points: name lookup, scoped hooks, and hook-name validation."""

    def setup_hooks(self) -> None:
        """Call at the end of `__init__`: names every HookPoint after its module path."""
        self.hook_dict: dict[str, HookPoint] = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module

    def hook_names(self) -> list[str]:
        return list(self.hook_points())

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by name: the model's own, plus any overlaid in this thread or task."""
        extra = (_OVERLAY.get() or {}).get(id(self))
        return {**self.hook_dict, **extra} if extra else self.hook_dict

    @contextmanager
    def hook_overlay(self, points: dict[str, HookPoint]) -> Iterator[None]:
        """Make `points` nameable (hookable, cacheable) for this thread or task while the block runs."""
        clash = [n for n in points if n in self.hook_points()]
        if clash:
            raise KeyError(f"hook points {clash} already exist on this model")
        current = _OVERLAY.get() or {}
        mine = {**current.get(id(self), {}), **points}
        token = _OVERLAY.set({**current, id(self): mine})
        try:
            yield
        finally:
            _OVERLAY.reset(token)

    def resolve_hook_names(self, selector: NameFilter) -> list[str]:
        """Turn a name, list of names, predicate or None (= all) into hook names; unknown names raise."""
        points = self.hook_points()
        if selector is None:
            return list(points)
        if callable(selector):
            return [n for n in points if selector(n)]
        names = [selector] if isinstance(selector, str) else list(selector)
        for n in names:
            if n not in points:
                close = difflib.get_close_matches(n, points, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise KeyError(f"unknown hook name {n!r}{hint} (model.hook_names() lists all)")
        return names

    def hook_count(self) -> int:
        """Hooks currently attached anywhere in the model (0 outside any `hooks()` block)."""
        return sum(len(h._fwd) + len(h._bwd) for h in self.hook_dict.values())

    @contextmanager
    def hooks(
        self, fwd_hooks: Sequence[HookSpec] = (), bwd_hooks: Sequence[HookSpec] = ()
    ) -> Iterator[HookedRootModule]:
        """Attach hooks for the duration of the block; they are removed even if the block raises.

        All names are validated before anything is attached, so a bad name leaves the model untouched.
        """
        plan = [(p, fn, False) for sel, fn in fwd_hooks for p in self._points(sel)]
        plan += [(p, fn, True) for sel, fn in bwd_hooks for p in self._points(sel)]
        attached: list[tuple[HookPoint, object, bool]] = []
        try:
            for point, fn, backward in plan:
                if backward:
                    handle = _BackwardHook(fn, point)
                    point._bwd.append(handle)
                else:
                    handle = fn
                    point._fwd.append(fn)
                attached.append((point, handle, backward))
            yield self
        finally:
            for point, handle, backward in reversed(attached):
                if backward:
                    handle.live = False  # type: ignore[attr-defined]
                    point._bwd.remove(handle)  # type: ignore[arg-type]
                else:
                    point._fwd.remove(handle)  # type: ignore[arg-type]

    def _points(self, selector: str | Callable[[str], bool]) -> list[HookPoint]:
        names = self.resolve_hook_names(selector)
        if not names and callable(selector):
            raise KeyError("hook filter matched no hook point (model.hook_names() lists all)")
        points = self.hook_points()
        return [points[n] for n in names]
