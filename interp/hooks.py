"""Hook points, context-local scoped hooks, and TransformerLens-style persistent hooks.

A `HookPoint` is an identity module placed on every named activation; its name is its module path
(`blocks.3.attn.hook_pattern`). Hooks are plain functions `fn(activation, hook) -> activation | None`.

**Scoped hooks** (`HookedRootModule.hooks(...)` and everything built on it: `run_with_hooks`,
`run_with_cache`, `ablate(...)`, every analysis function) belong to the thread or asyncio task that opened
the scope, through a `ContextVar`. Two threads sharing one model never see each other's hooks or caches:
- a plain `threading.Thread` starts with no scope;
- a child asyncio task, or `asyncio.to_thread`, copies its parent's context and so sees the parent's scope,
  but only while that scope is open: a scope is a live object, closed when its block exits;
- `hook.ctx` belongs to the scope whose hook is running (the run), not to the HookPoint.
A scope is detached in `finally`, so an exception inside a hook or the forward never leaves one behind.

**Persistent hooks** (`HookPoint.add_hook`, `model.add_hook`, `add_perma_hook`, `run_with_hooks(
reset_hooks_end=False)`) exist for TransformerLens compatibility only. They are attached to the module, so
they are **model-wide**: they fire on every forward pass from every thread and task, and `reset_hooks()`
removes them for everyone. interp's own code never uses them.

A HookPoint goes through `nn.Module.__call__` whenever something outside interp watches it (torch module
or global hooks, nnsight, captum), and skips it otherwise: nn.Module's call machinery costs microseconds
per call and a 12-layer model has hundreds of hook points.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

from torch import Tensor, nn
from torch.nn.modules import module as _torch_module

HookFn = Callable[[Tensor, "HookPoint"], Tensor | None]
NameFilter = str | Sequence[str] | Callable[[str], bool] | None
Direction = Literal["fwd", "bwd"]

# nn.Module's global hook registries, mutated in place by torch.nn.modules.module.register_module_*_hook.
_GFH = _torch_module._global_forward_hooks
_GFPH = _torch_module._global_forward_pre_hooks
_GBH = _torch_module._global_backward_hooks
_GBPH = _torch_module._global_backward_pre_hooks
_LAYER = re.compile(r"^blocks\.(\d+)\.")
_PERSISTENT_LOCK = (
    threading.Lock()
)  # serialises edits of persistent hooks (a module attribute would not deepcopy)


def _watched(d: dict[str, Any]) -> bool:
    """Whether a module (given its __dict__) is watched by torch hooks, global hooks or nnsight."""
    return bool(
        d["_forward_hooks"]
        or d["_forward_pre_hooks"]
        or d["_backward_hooks"]
        or d["_backward_pre_hooks"]
        or "forward" in d  # nnsight installs its controller as the instance's forward
        or _GFH
        or _GFPH
        or _GBH
        or _GBPH
    )


class HookOutputError(ValueError):
    """A hook returned something that cannot replace the activation (or gradient) it was given."""


class HookShapeError(HookOutputError):
    """A hook returned a non-tensor, or a tensor whose shape differs from the activation it replaced."""


class HookDtypeError(HookOutputError):
    """A hook returned a tensor whose dtype or device differs from the activation it replaced."""


class HookRangeError(ValueError):
    """A hook was named explicitly for a point that this run's start/stop layers never reach."""


class _Scope:
    """The hooks one `hooks()` block attached, and the contexts its hooks write; closed on exit."""

    __slots__ = ("fwd", "bwd", "explicit", "fired", "ctx", "open")

    def __init__(self) -> None:
        self.fwd: dict[HookPoint, list[HookFn]] = {}
        self.bwd: dict[HookPoint, list[HookFn]] = {}
        self.explicit: set[HookPoint] = set()  # named by string: must fire in the scope's runs
        self.fired: set[HookPoint] = set()  # points whose forward hooks already ran in this scope
        self.ctx: dict[HookPoint, dict[str, Any]] = {}
        self.open = True

    def count(self) -> int:
        return sum(map(len, self.fwd.values())) + sum(map(len, self.bwd.values()))


# The scopes open in this thread / task, outermost first. A tuple, so a copied context (child task) shares
# the scope objects but not later pushes.
_SCOPES: ContextVar[tuple[_Scope, ...]] = ContextVar("interp_hook_scopes", default=())
# The scope whose hook is running right now (None: a persistent hook), for `hook.ctx`.
_RUNNING: ContextVar[_Scope | None] = ContextVar("interp_running_hook_scope", default=None)


class _Persistent:
    """A model-wide hook added TransformerLens-style; removed by `remove_hooks` / `reset_hooks`."""

    __slots__ = ("fn", "permanent", "level", "live")

    def __init__(self, fn: HookFn, permanent: bool, level: int | None) -> None:
        self.fn, self.permanent, self.level, self.live = fn, permanent, level, True


class HookPoint(nn.Module):
    """Identity on the forward pass; runs the hooks visible in the current context, in order.

    Order: persistent hooks (in the order added, `prepend=True` first), then each open scope's hooks,
    outermost scope first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # set by HookedRootModule.setup_hooks to the module path
        # Persistent hooks are replaced, never mutated, so a forward in another thread iterates a snapshot.
        self._perma_fwd: tuple[_Persistent, ...] = ()
        self._perma_bwd: tuple[_Persistent, ...] = ()
        self._model_ctx: dict[str, Any] = {}  # hook.ctx for persistent hooks

    # ---- what fires --------------------------------------------------------------------------------------
    @property
    def watched(self) -> bool:
        """True when something outside interp (torch hooks, nnsight, captum) watches this module."""
        return _watched(self.__dict__)

    @property
    def active(self) -> bool:
        """True when this point must run in the current context: a hook visible here, or a watcher.

        Modules use it to pick the explicit (hookable) code path, so a forward in a thread without hooks
        keeps the fused path while another thread's hooks are attached.
        """
        return self.hooked or self.watched

    @property
    def hooked(self) -> bool:
        """True when an interp hook (scoped in this context, or persistent) is on this point."""
        if self._perma_fwd or self._perma_bwd:
            return True
        return any(s.open and (self in s.fwd or self in s.bwd) for s in _SCOPES.get())

    def __call__(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if _watched(self.__dict__):  # one dict read per registry: this runs hundreds of times per forward
            return nn.Module.__call__(self, x)  # -> self.forward -> _run, with torch's hooks around it
        if _SCOPES.get() or self._perma_fwd or self._perma_bwd:
            return self._run(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x)

    def _run(self, x: Tensor) -> Tensor:
        scopes = _SCOPES.get()
        for p in self._perma_fwd:
            if p.live:
                x = self._call_hook(p.fn, x, None)
        for scope in scopes:
            if scope.open and self in scope.fwd:
                scope.fired.add(self)
                for fn in scope.fwd[self]:
                    x = self._call_hook(fn, x, scope)
        if x.requires_grad:
            for p in self._perma_bwd:
                x.register_hook(_BackwardHook(p.fn, self, None, p))
            for scope in scopes:
                for fn in scope.bwd.get(self, ()) if scope.open else ():
                    x.register_hook(_BackwardHook(fn, self, scope, None))
        return x

    def _call_hook(self, fn: HookFn, x: Tensor, scope: _Scope | None) -> Tensor:
        token = _RUNNING.set(scope)
        try:
            out = fn(x, self)
        finally:
            _RUNNING.reset(token)
        if out is None:
            return x
        check_output(out, x, f"hook {_fn_name(fn)!r} on {self.name}", "activation")
        return out

    # ---- TransformerLens surface -------------------------------------------------------------------------
    @property
    def ctx(self) -> dict[str, Any]:
        """A dict hooks may keep state in, owned by the run's scope (by the model for persistent hooks).

        Inside a hook: the scope of the running hook. Outside: the innermost open scope of this context
        that hooks this point, else the model-wide dict that persistent hooks use.
        """
        running = _RUNNING.get()
        if running is not None:
            return running.ctx.setdefault(self, {})
        for scope in reversed(_SCOPES.get()):
            if scope.open and (self in scope.fwd or self in scope.bwd):
                return scope.ctx.setdefault(self, {})
        return self._model_ctx

    def clear_context(self) -> None:
        """Empty the model-wide context (scoped contexts end with their scope)."""
        self._model_ctx = {}

    def layer(self) -> int:
        """The block index of a `blocks.{layer}.…` hook point (TransformerLens's `hook.layer()`)."""
        match = _LAYER.match(self.name)
        if match is None:
            raise ValueError(f"hook point {self.name!r} is not inside a block, so it has no layer")
        return int(match.group(1))

    def add_hook(
        self,
        hook: HookFn,
        dir: Direction = "fwd",
        is_permanent: bool = False,
        level: int | None = None,
        prepend: bool = False,
    ) -> None:
        """Attach a persistent, MODEL-WIDE hook (TransformerLens semantics): it fires on every forward from
        every thread until `remove_hooks` / `model.reset_hooks()` (and with `is_permanent`, until
        `including_permanent=True`). Prefer `with model.hooks(...)`, which is scoped to your context."""
        if not callable(hook):
            raise TypeError(f"hook must be callable fn(activation, hook), got {type(hook).__name__}")
        attr = _direction_attr(dir)
        entry = _Persistent(hook, is_permanent, level)
        with _PERSISTENT_LOCK:
            old = getattr(self, attr)
            setattr(self, attr, (entry, *old) if prepend else (*old, entry))

    def remove_hooks(
        self,
        dir: Direction | Literal["both"] = "fwd",
        including_permanent: bool = False,
        level: int | None = None,
    ) -> None:
        """Remove persistent hooks (permanent ones only with `including_permanent`; with `level`, only
        those added at that level). Scoped hooks are untouched: their blocks own them."""
        attrs = ["_perma_fwd", "_perma_bwd"] if dir == "both" else [_direction_attr(dir)]
        with _PERSISTENT_LOCK:
            for attr in attrs:
                keep = []
                for p in getattr(self, attr):
                    if (p.permanent and not including_permanent) or (level is not None and p.level != level):
                        keep.append(p)
                    else:
                        p.live = False  # gradient hooks already registered on tensors stop firing
                setattr(self, attr, tuple(keep))

    @property
    def fwd_hooks(self) -> list[HookFn]:
        """The persistent forward hooks (TransformerLens lists its handles here)."""
        return [p.fn for p in self._perma_fwd]

    @property
    def bwd_hooks(self) -> list[HookFn]:
        return [p.fn for p in self._perma_bwd]

    def persistent_count(self) -> int:
        return len(self._perma_fwd) + len(self._perma_bwd)

    def extra_repr(self) -> str:
        return self.name


def _direction_attr(dir: str) -> str:
    if dir == "fwd":
        return "_perma_fwd"
    if dir == "bwd":
        return "_perma_bwd"
    raise ValueError(f"hook direction must be 'fwd' or 'bwd', got {dir!r}")


def _fn_name(fn: object) -> str:
    return getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None) or repr(fn)


def check_output(out: object, x: Tensor, who: str, what: str) -> None:
    """Raise a specific error, naming the hook, when `out` cannot replace `x`."""
    if not isinstance(out, Tensor):
        raise HookShapeError(
            f"{who} returned {type(out).__name__}; it must return None or a tensor of the {what}'s shape "
            f"{tuple(x.shape)}"
        )
    if out.shape != x.shape:
        raise HookShapeError(
            f"{who} returned {tuple(out.shape)}; it must return None or a tensor of the {what}'s shape "
            f"{tuple(x.shape)}"
        )
    if out.dtype != x.dtype or out.device != x.device:
        raise HookDtypeError(
            f"{who} returned a {out.dtype} tensor on {out.device}; the {what} is {x.dtype} on {x.device} "
            f"(cast with .to(activation))"
        )


class _BackwardHook:
    """A gradient hook; it stops firing once its scope closed or it was removed (tensor hooks outlive
    modules). It runs with its scope as the running one, whichever thread autograd calls it on."""

    __slots__ = ("fn", "point", "scope", "persistent")

    def __init__(self, fn: HookFn, point: HookPoint, scope: _Scope | None, persistent: _Persistent | None):
        self.fn, self.point, self.scope, self.persistent = fn, point, scope, persistent

    def __call__(self, grad: Tensor) -> Tensor | None:
        if (self.scope is not None and not self.scope.open) or (
            self.persistent is not None and not self.persistent.live
        ):
            return None
        token = _RUNNING.set(self.scope)
        try:
            out = self.fn(grad, self.point)
        finally:
            _RUNNING.reset(token)
        if out is not None:
            check_output(out, grad, f"backward hook {_fn_name(self.fn)!r} on {self.point.name}", "gradient")
        return out


HookSpec = tuple[str | Callable[[str], bool], HookFn]

# Hook points that exist only inside a block of this thread or task (an SAE's points while it is spliced):
# model id -> {name: point}. They are not submodules, so other threads' forwards never run through them.
_OVERLAY: ContextVar[dict[int, dict[str, HookPoint]] | None] = ContextVar("interp_hook_overlay", default=None)


class HookedRootModule(nn.Module):
    """Base for models with hook points: name lookup, scoped hooks, and hook-name validation."""

    def setup_hooks(self) -> None:
        """Call at the end of `__init__`: names every HookPoint after its module path."""
        self.hook_dict: dict[str, HookPoint] = {}
        self.absent_hooks: dict[str, str] = {}  # names a module's variant lacks -> why (parallel: resid_mid)
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module
            for hook, why in getattr(module, "absent_hooks", {}).items():
                self.absent_hooks[f"{name}.{hook}"] = why

    def hook_names(self) -> list[str]:
        return list(self.named_hook_points())

    def named_hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by name: the model's own, plus any overlaid in this thread or task."""
        extra = (_OVERLAY.get() or {}).get(id(self))
        return {**self.hook_dict, **extra} if extra else self.hook_dict

    @contextmanager
    def hook_overlay(self, points: dict[str, HookPoint]) -> Iterator[None]:
        """Make `points` nameable (hookable, cacheable) in this thread or task while the block runs."""
        clash = [n for n in points if n in self.named_hook_points()]
        if clash:
            raise KeyError(f"hook points {clash} already exist on this model")
        current = _OVERLAY.get() or {}
        token = _OVERLAY.set({**current, id(self): {**current.get(id(self), {}), **points}})
        try:
            yield
        finally:
            _OVERLAY.reset(token)

    def hook_points(self) -> list[HookPoint]:
        return list(self.hook_dict.values())

    def resolve_hook_names(self, selector: NameFilter) -> list[str]:
        """Turn a name, list of names, predicate or None (= all) into hook names; unknown names raise."""
        named = self.named_hook_points()
        if selector is None:
            return list(named)
        if callable(selector):
            return [n for n in named if selector(n)]
        names = [selector] if isinstance(selector, str) else list(selector)
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"hook names must be strings, got {type(n).__name__} {n!r}")
            if n in getattr(self, "absent_hooks", {}):
                raise KeyError(f"{n!r} does not exist in this model: {self.absent_hooks[n]}")
            if n not in named:
                close = difflib.get_close_matches(n, named, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise KeyError(f"unknown hook name {n!r}{hint} (model.hook_names() lists all)")
        return names

    def hook_count(self) -> int:
        """Hooks that fire in this context: this context's open scopes plus the model-wide persistent ones
        (0 outside any `hooks()` block unless TransformerLens-style hooks were added)."""
        points = set(self.hook_dict.values())
        scoped = sum(
            len(fns)
            for s in _SCOPES.get()
            if s.open
            for table in (s.fwd, s.bwd)
            for p, fns in table.items()
            if p in points
        )
        return scoped + sum(p.persistent_count() for p in points)

    def explicit_hook_points(self) -> list[HookPoint]:
        """The points this context's open scopes named explicitly (by string) and whose hooks have not yet
        run in that scope, outermost first. A point that already fired (say in a full run that cached the
        residual a partial run now starts from) has had its effect."""
        points = set(self.hook_dict.values())
        return [p for s in _SCOPES.get() if s.open for p in s.explicit - s.fired if p in points]

    @contextmanager
    def hooks(
        self, fwd_hooks: Sequence[HookSpec] = (), bwd_hooks: Sequence[HookSpec] = ()
    ) -> Iterator[HookedRootModule]:
        """Attach hooks for the duration of the block, for this thread / asyncio task only.

        All names are validated before anything is attached, so a bad name leaves the model untouched;
        the scope is closed even if the block raises. Child tasks created inside the block see its hooks
        only while it is open.
        """
        scope = _Scope()
        for table, specs in ((scope.fwd, fwd_hooks), (scope.bwd, bwd_hooks)):
            for sel, fn in specs:
                if not callable(fn):
                    raise TypeError(f"hook for {sel!r} must be callable fn(activation, hook), got {fn!r}")
                for point in self._points(sel):
                    table.setdefault(point, []).append(fn)
                    if isinstance(sel, str):
                        scope.explicit.add(point)
        token = _SCOPES.set((*_SCOPES.get(), scope))
        try:
            yield self
        finally:
            scope.open = False
            try:
                _SCOPES.reset(token)
            except ValueError:  # exited in another context than entered (e.g. a generator moved across tasks)
                _SCOPES.set(tuple(s for s in _SCOPES.get() if s is not scope))

    def _points(self, selector: str | Callable[[str], bool]) -> list[HookPoint]:
        names = self.resolve_hook_names(selector)
        if not names and callable(selector):
            raise KeyError("hook filter matched no hook point (model.hook_names() lists all)")
        named = self.named_hook_points()
        return [named[n] for n in names]

    # ---- persistent hooks: TransformerLens semantics, model-wide ------------------------------------------
    def add_hook(
        self,
        name: str | Callable[[str], bool],
        hook: HookFn,
        dir: Direction = "fwd",
        is_permanent: bool = False,
        level: int | None = None,
        prepend: bool = False,
    ) -> None:
        """TransformerLens's `add_hook`: a MODEL-WIDE hook on every matching point, for every thread, until
        `reset_hooks()`. Validated before anything is attached."""
        _direction_attr(dir)
        for point in self._points(name):
            point.add_hook(hook, dir=dir, is_permanent=is_permanent, level=level, prepend=prepend)

    def add_perma_hook(self, name: str | Callable[[str], bool], hook: HookFn, dir: Direction = "fwd") -> None:
        """A persistent hook that `reset_hooks()` keeps (unless `including_permanent=True`). Model-wide."""
        self.add_hook(name, hook, dir=dir, is_permanent=True)

    def remove_all_hook_fns(
        self,
        direction: Direction | Literal["both"] = "both",
        including_permanent: bool = False,
        level: int | None = None,
    ) -> None:
        """Remove the persistent hooks of every point, for everyone (scoped hooks are untouched)."""
        if direction not in ("fwd", "bwd", "both"):
            raise ValueError(f"direction must be 'fwd', 'bwd' or 'both', got {direction!r}")
        for point in self.hook_dict.values():
            point.remove_hooks(direction, including_permanent=including_permanent, level=level)

    def clear_contexts(self) -> None:
        for point in self.hook_dict.values():
            point.clear_context()

    def reset_hooks(
        self,
        clear_contexts: bool = True,
        direction: Direction | Literal["both"] = "both",
        including_permanent: bool = False,
        level: int | None = None,
    ) -> None:
        """TransformerLens's `reset_hooks`: removes the model-wide persistent hooks FOR EVERY THREAD (and
        clears their contexts). Scoped hooks belong to their `hooks()` blocks and are not affected."""
        if clear_contexts:
            self.clear_contexts()
        self.remove_all_hook_fns(direction, including_permanent=including_permanent, level=level)
