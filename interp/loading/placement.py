"""Placement and offload through Hugging Face accelerate: which device each part of a model lives on.

Blocks are the unit of placement (accelerate's `no_split_module_classes`); the embeddings, the final norm and
the unembedding are units too, placed as accelerate's `infer_auto_device_map` decides. A unit on "disk" is
copied straight into memory-mapped files in `offload_folder` as its tensors stream in (accelerate's `.dat`
format and `index.json`) and never held in anonymous memory; accelerate's `AlignDevicesHook`s then bring it
in block by block for each forward (mapped from its files) and drop it after. Two things are interp's own:

- the token embedding is never offloaded: interp reads W_E outside the embedding's forward (the tied
  unembedding, the token device, causal tracing's noise scale), so it stays resident, and its device is the
  model's main device, where inputs start and outputs return;
- offloaded tensors are written in their memory order and viewed back in it, so a per-head weight keeps
  `per_head_param`'s layout when it is re-materialised (accelerate's reader returns contiguous tensors).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from interp.errors import LoadError

DeviceMap = Mapping[str, Any]
STRATEGIES = ("auto",)  # accelerate's "balanced" is what "auto" does with several GPUs
EMBED = "embed"  # the unit that stays resident (see the module docstring)


def check_device(device: Any) -> torch.device:
    """A torch device that exists on this machine, else a LoadError saying what does."""
    try:
        dev = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    except (RuntimeError, TypeError) as e:
        raise LoadError(f"invalid device {device!r}: {e}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = (
                "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            )
            raise LoadError(
                f"device={device!r} but CUDA is not available (torch {torch.__version__}, {build}; "
                f"torch.cuda.is_available() is False); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LoadError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LoadError(f"device={device!r} but MPS is not available on this machine; use device='cpu'")
    return dev


class Placement:
    """One load's placement: built from `interp.load`'s arguments before any weight is read, planned on the
    meta model (`plan`), used by `stream.fill` as its `Destination`, then attached (`dispatch`)."""

    def __init__(
        self, device_map: str | DeviceMap, max_memory: Mapping[Any, Any] | None, offload_folder: Any
    ) -> None:
        if isinstance(device_map, str):
            if device_map not in STRATEGIES:
                raise LoadError(
                    f"device_map={device_map!r}; allowed: {', '.join(map(repr, STRATEGIES))} or a dict "
                    f"{{module name: device}} (devices: 'cpu', 'cuda:0' or 0, 'mps', 'disk')"
                )
        elif isinstance(device_map, Mapping):
            if not device_map:
                raise LoadError("device_map is an empty dict; name at least one module ('' for all of them)")
            if max_memory is not None:
                raise LoadError(
                    "max_memory only applies to device_map='auto'; a dict already places each module"
                )
            device_map = {str(k): _device_value(k, v) for k, v in device_map.items()}
        else:
            raise LoadError(
                f"device_map must be 'auto' or a dict {{module name: device}}, not {device_map!r}"
            )
        if max_memory is not None and not isinstance(max_memory, Mapping):
            raise LoadError(
                f"max_memory must be a dict {{device: size}}, e.g. {{'cpu': '2GiB'}}, not {max_memory!r}"
            )
        self.requested = device_map
        self.max_memory = None if max_memory is None else {_memory_key(k): v for k, v in max_memory.items()}
        self.folder = None if offload_folder is None else Path(offload_folder).expanduser()
        self.units: dict[str, Any] = {}  # unit module name -> torch.device or "disk", set by `plan`
        self.index: dict[str, dict[str, Any]] = {}  # accelerate's offload index of what went to disk
        self.orders: dict[str, tuple[int, ...]] = {}  # key -> the dims in memory order, where not logical
        self._open: dict[str, np.memmap] = {}  # files being written
        self.main: torch.device = torch.device("cpu")

    # ---- planning ------------------------------------------------------------------------------------------
    def plan(self, model: nn.Module, dtype: torch.dtype) -> None:
        """Decide each unit's device on the meta-device `model` whose weights will stream in as `dtype`."""
        units = placement_units(model)
        if isinstance(self.requested, str):
            chosen = self._infer(model, dtype, units)
        else:
            chosen = self._expand(model, self.requested, units)
        if chosen[EMBED] == "disk":
            if not isinstance(self.requested, str):
                raise LoadError(
                    "device_map puts 'embed' on 'disk'; the token embedding must stay on a device (interp "
                    "reads W_E outside the embedding's forward: the tied unembedding, causal tracing's noise)"
                )
            chosen[EMBED] = torch.device("cpu")  # too little memory for anything: at least W_E stays in RAM
        self.main = chosen[EMBED]
        if getattr(getattr(model, "config", None), "tie_embeddings", False) and "unembed" in chosen:
            chosen["unembed"] = self.main  # its W_U is W_E: keep them together, no copy per forward
        self.units = chosen
        if "disk" in chosen.values():
            if self.folder is None:
                on_disk = [u for u, d in chosen.items() if d == "disk"]
                raise LoadError(
                    f"the placement offloads {_short(on_disk)} to disk, which needs offload_folder= (a folder "
                    f"for their files); or give max_memory more room"
                )
            self.folder.mkdir(parents=True, exist_ok=True)

    def _infer(self, model: nn.Module, dtype: torch.dtype, units: list[str]) -> dict[str, Any]:
        from accelerate import infer_auto_device_map
        from accelerate.utils import get_balanced_memory, get_max_memory

        no_split = sorted({type(model.get_submodule(u)).__name__ for u in units})
        try:
            max_memory = get_max_memory(self.max_memory)
            if torch.cuda.device_count() > 1 and self.max_memory is None:
                max_memory = get_balanced_memory(
                    model, max_memory, no_split_module_classes=no_split, dtype=dtype
                )
            found = infer_auto_device_map(
                model, max_memory=max_memory, no_split_module_classes=no_split, dtype=dtype
            )
        except (ValueError, TypeError, KeyError) as e:
            raise LoadError(
                f"accelerate could not place the model with max_memory={self.max_memory!r}: {e}"
            ) from e
        return self._expand(model, {k: _device_value(k, v) for k, v in found.items()}, units)

    def _expand(self, model: nn.Module, device_map: dict[str, Any], units: list[str]) -> dict[str, Any]:
        """{unit: device} from a map whose keys are units or modules holding them ("" is the whole model);
        a module with no tensors (a hook point) has nothing to place and is ignored."""
        modules = dict(model.named_modules())
        for key in device_map:
            if key in units or key == "" or any(u.startswith(key + ".") for u in units):
                continue
            if key in modules and not any(True for _ in modules[key].parameters()):
                continue
            inside = [u for u in units if key.startswith(u + ".")]
            if inside:
                raise LoadError(
                    f"device_map names {key!r}, a part of {inside[0]!r}; blocks and the embedding, norm "
                    f"and unembedding are the units of placement, each on one device"
                )
            raise LoadError(
                f"device_map names {key!r}, which is no module of this model; units: {_short(units)}"
            )
        out: dict[str, Any] = {}
        for unit in units:
            owners = [k for k in device_map if k == "" or unit == k or unit.startswith(k + ".")]
            if not owners:
                raise LoadError(
                    f"device_map does not place {unit!r}; add it (or a module holding it, '' for all)"
                )
            out[unit] = device_map[max(owners, key=len)]
        return out

    # ---- streaming (stream.Destination) --------------------------------------------------------------------
    def device_of(self, key: str) -> torch.device | None:
        """The device tensor `key` is made on; None: to disk. Offloaded-to-CPU weights (a GPU main device)
        live in CPU memory, where accelerate's hook reads them for each forward."""
        unit = self._unit_of(key)
        dev = self.units[unit]
        return None if dev == "disk" else dev

    def disk_buffer(self, key: str, like: Tensor) -> Tensor:
        """A tensor shaped and strided like `like`, backed by its file in the offload folder: the loader
        copies the weight straight in. The file is accelerate's `.dat` (raw, C order) of the tensor in its
        memory order, so reading it back gives the same strides (`per_head_param`'s layout)."""
        order = memory_order(like)
        stored = [like.shape[i] for i in order]
        name, np_dtype = _NUMPY.get(like.dtype, (str(like.dtype).removeprefix("torch."), None))
        assert self.folder is not None
        file = np.memmap(self.folder / f"{key}.dat", dtype=np_dtype or name, mode="w+", shape=tuple(stored))
        self.index[key] = {"dtype": name, "shape": stored}
        if order != tuple(range(like.ndim)):
            self.orders[key] = order
        self._open[key] = file
        return _as_torch(file, like.dtype).permute(_inverse(order))

    def written(self, key: str) -> None:
        del self._open[key]  # unmapped; the kernel writes the pages back when it likes (no msync wait)

    def _unit_of(self, key: str) -> str:
        for unit in self.units:
            if key.startswith(unit + "."):
                return unit
        raise LoadError(f"tensor {key} is in no placed module (units: {_short(list(self.units))})")

    # ---- attaching -----------------------------------------------------------------------------------------
    def dispatch(self, model: nn.Module) -> None:
        """Attach accelerate's hooks: each unit runs on its execution device, offloaded ones fetched per
        forward, a block's weights all at once (`preload_module_classes`)."""
        from accelerate.hooks import attach_align_device_hook_on_blocks
        from accelerate.utils import save_offload_index

        resident_cpu = (
            self.main.type != "cpu"
        )  # "cpu" units are then offloaded to RAM, run on the main device
        execution = {
            u: self.main if d == "disk" or (resident_cpu and d.type == "cpu") else d
            for u, d in self.units.items()
        }
        offload = {u: d == "disk" or (resident_cpu and d.type == "cpu") for u, d in self.units.items()}
        execution[""] = self.main
        ram = {k: t for k, t in model.state_dict().items() if offload[self._unit_of(k)] and not t.is_meta}
        if self.index:
            assert self.folder is not None
            save_offload_index(self.index, str(self.folder))
        weights = _Weights(ram, self.folder, self.index, self.orders) if any(offload.values()) else None
        blocks = sorted(
            {type(model.get_submodule(u)).__name__ for u in self.units if u.startswith("blocks.")}
        )
        attach_align_device_hook_on_blocks(
            model,
            execution_device=execution,
            offload=offload,
            weights_map=weights,
            preload_module_classes=blocks,
            tied_params_map={},
        )
        model.device_map = {u: str(d) for u, d in self.units.items()}
        # accelerate swaps offloaded weights into the modules themselves: two threads' forwards would see
        # each other's swaps, so a placed model runs one forward at a time (hooks stay per thread).
        model.forward_lock = threading.RLock()
        model.weights_of = functools.partial(_fetched, model.forward_lock)

    @property
    def needs_hooks(self) -> bool:
        """False when the whole model sits on one device: then it is simply loaded there."""
        return len({str(d) for d in self.units.values()}) > 1


@contextlib.contextmanager
def _fetched(lock: AbstractContextManager[Any], module: nn.Module) -> Iterator[None]:
    """`model.weights_of` of a placed model: the module's offloaded weights fetched (as for a forward, which
    the lock keeps out meanwhile) and dropped again on exit; a resident module is left as it is."""
    from accelerate.utils import align_module_device

    with lock, align_module_device(module):
        yield


def placement_units(model: nn.Module) -> list[str]:
    """The model's units of placement, in forward order: each block, and every other top-level module that
    holds tensors (embed, pos_embed, ln_final, unembed)."""
    units = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            units += [f"{name}.{i}" for i in range(len(child))]
        elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
            units.append(name)
    return units


def memory_order(t: Tensor) -> tuple[int, ...]:
    """The dims of `t` from the outermost in memory to the innermost: `t.permute(order)` is contiguous."""
    return tuple(sorted(range(t.ndim), key=lambda i: (-t.stride(i), i)))


class _Weights(Mapping[str, Tensor]):
    """accelerate's weights map: CPU-resident tensors, or offloaded ones mapped from their files.

    accelerate's own reader copies each file into anonymous memory (`torch.tensor(memmap)`) and returns it
    contiguous; a mapping costs page cache only, and is viewed back in the tensor's memory order.
    """

    def __init__(
        self,
        ram: dict[str, Tensor],
        folder: Path | None,
        index: dict[str, dict[str, Any]],
        orders: dict[str, tuple[int, ...]],
    ) -> None:
        self.ram, self.folder, self.index, self.orders = ram, folder, index, orders

    def __getitem__(self, key: str) -> Tensor:
        if key in self.ram:
            return self.ram[key]
        info = self.index[key]  # KeyError for a name it does not hold, as a Mapping should
        dtype = getattr(torch, info["dtype"])
        np_dtype = _NUMPY.get(dtype, (info["dtype"], None))[1] or info["dtype"]
        assert self.folder is not None
        # "c": copy-on-write, so torch gets a writable array; the file itself is never written again
        file = np.memmap(self.folder / f"{key}.dat", dtype=np_dtype, mode="c", shape=tuple(info["shape"]))
        order = self.orders.get(key, tuple(range(len(info["shape"]))))
        return _as_torch(file, dtype).permute(_inverse(order))

    def __iter__(self) -> Iterator[str]:
        yield from self.ram
        yield from self.index

    def __len__(self) -> int:
        return len(self.ram) + len(self.index)


# dtypes numpy has no name for, stored as same-width integers under accelerate's names for them
_NUMPY: dict[torch.dtype, tuple[str, str | None]] = {torch.bfloat16: ("bfloat16", "int16")}


def _as_torch(array: np.ndarray, dtype: torch.dtype) -> Tensor:
    t = torch.from_numpy(array)
    return t.view(dtype) if t.dtype != dtype else t


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(order.index(i) for i in range(len(order)))


def _device_value(key: Any, value: Any) -> torch.device | str:
    if value == "disk":
        return "disk"
    try:
        return check_device(value)
    except LoadError as e:
        raise LoadError(f"device_map[{key!r}]: {e}") from None


def _memory_key(key: Any) -> Any:
    if key in ("cpu", "disk", "mps") or isinstance(key, int):
        if isinstance(key, int):
            check_device(key)
        return key
    dev = check_device(key)
    if dev.type == "cuda":
        return 0 if dev.index is None else dev.index
    raise LoadError(f"max_memory key {key!r}; allowed: 'cpu', a GPU index (0) or 'cuda:0', 'mps'")


def _short(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f" ... ({len(names)} in all)" if len(names) > 6 else "")
