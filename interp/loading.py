"""Load models into `HookedTransformer`: Hugging Face folders, hub ids, in-memory HF models, and our own format.

This is the only module that knows Hugging Face parameter names. Each architecture has one converter that
takes every tensor it needs through `_Checkpoint.take`, which checks the name and shape, so a missing or
misshapen tensor is reported by name with both shapes, and leftover tensors are an error, not silence.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp.config import ModelConfig
from interp.model import HookedTransformer

INTERP_CONFIG = "interp_config.json"
WEIGHTS = "model.safetensors"


class LoadError(ValueError):
    """The source could not be turned into a model; the message says what was wrong and what is allowed."""


class ParityError(RuntimeError):
    """interp's logits differ from the Hugging Face reference by more than the tolerance."""


def load(
    source: Any = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    *,
    tokenizer: Any = None,
    check_parity: bool = False,
    parity_atol: float = 1e-4,
) -> HookedTransformer:
    """Load a model: an embedded name (default "tiny-facts"), a local folder, a hub id, or an HF model.

    `dtype` defaults to float32. With `check_parity`, the Hugging Face model is run on a probe input and the
    largest logit difference is stored as `model.parity_max_diff`; above `parity_atol` ParityError is raised.
    """
    from interp.models import EMBEDDED, embedded_path

    source = "tiny-facts" if source is None else source
    hf_model = None
    if _is_hf_model(source):
        hf_model = source
        model = _from_hf_state(source.config, type(source).__name__, source.state_dict(), tokenizer)
    else:
        if not isinstance(source, (str, Path)):
            raise LoadError(
                f"source must be a model name, a folder, a hub id or a transformers model, not {type(source)}"
            )
        name = str(source)
        if name in EMBEDDED:
            path = embedded_path(name)
        elif Path(name).expanduser().exists():
            path = Path(name).expanduser()
        elif _looks_like_path(name):
            raise LoadError(f"no such folder: {name}")
        else:
            path = _download(name, embedded=sorted(EMBEDDED))
        model = _load_dir(path, tokenizer)
    model = model.to(device=device or "cpu", dtype=dtype or torch.float32)
    if check_parity:
        if hf_model is None and (path / INTERP_CONFIG).exists():
            raise LoadError("check_parity compares against Hugging Face; this source is interp's own format")
        model.parity_max_diff = _parity(model, hf_model if hf_model is not None else path, parity_atol)
    return model


def save_model(model: HookedTransformer, path: Path) -> Path:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path / WEIGHTS))
    meta = {"format": "interp", "version": 1, "config": model.cfg.to_dict()}
    meta["default_prepend_bos"] = model.default_prepend_bos
    (path / INTERP_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(path))
    return path


# ---- sources -------------------------------------------------------------------------------------------------
def _is_hf_model(source: Any) -> bool:
    return (
        isinstance(source, torch.nn.Module)
        and hasattr(source, "config")
        and hasattr(source.config, "to_dict")
    )


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.endswith("/") or name.count("/") > 1 or "\\" in name


def _download(repo_id: str, embedded: list[str]) -> Path:
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo_id):
        raise LoadError(
            f"{repo_id!r} is neither an existing folder nor a hub id; embedded models: {embedded}"
        )
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt", "*.model"]
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo: all mean the same to the caller
        raise LoadError(
            f"could not fetch {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]}). "
            f"Offline? Pass a local folder (config.json + *.safetensors) or an embedded model: {embedded}"
        ) from e


def _load_dir(path: Path, tokenizer: Any) -> HookedTransformer:
    if not path.is_dir():
        raise LoadError(f"{path} is a file; expected a folder with config.json and weights")
    if (path / INTERP_CONFIG).exists():
        return _load_interp_dir(path, tokenizer)
    if not (path / "config.json").exists():
        raise LoadError(
            f"{path} has no config.json (Hugging Face) or {INTERP_CONFIG} (interp): not a model folder"
        )
    from transformers import AutoConfig

    hf_cfg = AutoConfig.from_pretrained(str(path))
    by_type = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}  # fmt: skip
    arch = (getattr(hf_cfg, "architectures", None) or [by_type.get(hf_cfg.model_type, hf_cfg.model_type)])[0]
    tok = tokenizer if tokenizer is not None else _load_tokenizer(path)
    return _from_hf_state(hf_cfg, arch, _read_weights(path), tok)


def _load_interp_dir(path: Path, tokenizer: Any) -> HookedTransformer:
    try:
        meta = json.loads((path / INTERP_CONFIG).read_text())
        cfg = ModelConfig.from_dict(meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LoadError(f"{path / INTERP_CONFIG} is unreadable or malformed: {e}") from e
    tok = tokenizer if tokenizer is not None else _load_tokenizer(path, fast=True)
    model = HookedTransformer(cfg, tok, default_prepend_bos=meta.get("default_prepend_bos", True), init=False)
    _assign(model, _read_safetensors(path / WEIGHTS), source=str(path / WEIGHTS))
    return model


def _load_tokenizer(path: Path, fast: bool = False) -> Any:
    """The folder's tokenizer, or None. `fast`: a tokenizer.json is there to be read as it is, which skips
    AutoTokenizer's class resolution (a third of a second, most of the embedded model's first load)."""
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        return None
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cls = PreTrainedTokenizerFast if fast and (path / "tokenizer.json").exists() else AutoTokenizer
    try:
        return cls.from_pretrained(str(path))
    except Exception as e:
        raise LoadError(f"the tokenizer files in {path} could not be loaded: {e}") from e


def _read_weights(path: Path) -> dict[str, Tensor]:
    files = sorted(path.glob("*.safetensors"))
    if files:
        state: dict[str, Tensor] = {}
        for f in files:
            state.update(_read_safetensors(f))
        return state
    bins = sorted(path.glob("pytorch_model*.bin"))
    if not bins:
        raise LoadError(f"no *.safetensors or pytorch_model.bin in {path}")
    state = {}
    for f in bins:
        try:
            state.update(torch.load(f, map_location="cpu", weights_only=True))
        except Exception as e:
            raise LoadError(f"could not read {f} (weights_only=True): {e}") from e
    return state


def _read_safetensors(file: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    if not file.exists():
        raise LoadError(f"missing weights file {file}")
    try:
        return load_file(str(file))
    except Exception as e:  # SafetensorError has no stable import path across versions
        raise LoadError(f"could not read {file}: it is truncated or corrupt ({e})") from e


def _assign(model: HookedTransformer, state: dict[str, Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise LoadError(f"{source}: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise LoadError(
                f"{source}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
            )
    model.load_state_dict(state)  # copies into our parameters, keeping their per-head memory layout


# ---- Hugging Face conversion ---------------------------------------------------------------------------------
class _Checkpoint:
    """Hands out HF tensors by name, checking shapes, and remembers what was used."""

    IGNORED = re.compile(r".*(attn\.bias|attn\.masked_bias|rotary_emb\.inv_freq)$")  # buffers, not weights

    def __init__(self, state: dict[str, Tensor], prefix: str) -> None:
        # Some checkpoints (the original gpt2 upload) omit the "transformer." prefix; accept both.
        self.state = {k.removeprefix(prefix): v for k, v in state.items()}
        self.original = {k.removeprefix(prefix): k for k in state}
        self.prefix = prefix if any(k.startswith(prefix) for k in state) else ""
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return self.original.get(key, self.prefix + key)

    def has(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str, shape: tuple[int, ...]) -> Tensor:
        if key not in self.state:
            raise LoadError(f"checkpoint is missing tensor {self._name(key)} (expected shape {shape})")
        t = self.state[key]
        if tuple(t.shape) != shape:
            raise LoadError(
                f"tensor {self._name(key)} has shape {tuple(t.shape)}, but the config implies {shape}"
            )
        self.used.add(key)
        return t.float() if t.is_floating_point() else t

    def check_all_used(self, arch: str) -> None:
        left = [self._name(k) for k in self.state if k not in self.used and not self.IGNORED.match(k)]
        if left:
            raise LoadError(f"{arch}: checkpoint has tensors interp does not map: {left[:8]}")


def _gpt2(hf: Any, ck: _Checkpoint) -> tuple[ModelConfig, dict[str, Tensor]]:
    if getattr(hf, "scale_attn_by_inverse_layer_idx", False) or not getattr(hf, "scale_attn_weights", True):
        raise LoadError("GPT-2 variants with non-standard attention scaling are not supported")
    act = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}
    if hf.activation_function not in act:
        raise LoadError(f"unsupported GPT-2 activation {hf.activation_function!r}; supported: {sorted(act)}")
    m, h = hf.n_embd, hf.n_head
    d, mlp = m // h, hf.n_inner or 4 * hf.n_embd
    cfg = ModelConfig(
        d_model=m, n_layers=hf.n_layer, n_heads=h, d_head=d, d_mlp=mlp, d_vocab=hf.vocab_size,
        n_ctx=hf.n_positions, norm="layernorm", norm_eps=hf.layer_norm_epsilon,
        act_fn=act[hf.activation_function], positional="learned",
        tie_embeddings=_tied(hf, ck, "wte.weight"),
    )  # fmt: skip
    sd = {
        "embed.W_E": ck.take("wte.weight", (hf.vocab_size, m)),
        "pos_embed.W_pos": ck.take("wpe.weight", (hf.n_positions, m)),
    }
    for i in range(hf.n_layer):
        src, dst = f"h.{i}.", f"blocks.{i}."
        qkv_w = ck.take(src + "attn.c_attn.weight", (m, 3 * m))  # Conv1D: [d_in, d_out]
        qkv_b = ck.take(src + "attn.c_attn.bias", (3 * m,))
        for j, name in enumerate("QKV"):
            sd[dst + f"attn.W_{name}"] = qkv_w[:, j * m : (j + 1) * m].reshape(m, h, d).permute(1, 0, 2)
            sd[dst + f"attn.b_{name}"] = qkv_b[j * m : (j + 1) * m].reshape(h, d)
        sd[dst + "attn.W_O"] = ck.take(src + "attn.c_proj.weight", (m, m)).reshape(h, d, m)
        sd[dst + "attn.b_O"] = ck.take(src + "attn.c_proj.bias", (m,))
        sd[dst + "mlp.W_in"] = ck.take(src + "mlp.c_fc.weight", (m, mlp))
        sd[dst + "mlp.b_in"] = ck.take(src + "mlp.c_fc.bias", (mlp,))
        sd[dst + "mlp.W_out"] = ck.take(src + "mlp.c_proj.weight", (mlp, m))
        sd[dst + "mlp.b_out"] = ck.take(src + "mlp.c_proj.bias", (m,))
        for ln, ours in (("ln_1", "ln1"), ("ln_2", "ln2")):
            sd[dst + f"{ours}.w"] = ck.take(src + f"{ln}.weight", (m,))
            sd[dst + f"{ours}.b"] = ck.take(src + f"{ln}.bias", (m,))
    sd["ln_final.w"] = ck.take("ln_f.weight", (m,))
    sd["ln_final.b"] = ck.take("ln_f.bias", (m,))
    if not cfg.tie_embeddings:
        sd["unembed.W_U"] = ck.take("lm_head.weight", (hf.vocab_size, m)).T
    return cfg, sd


def _llama_family(qkv_bias: Callable[[Any], bool], out_bias: Callable[[Any], bool]) -> Callable:
    """LLaMA, Mistral and Qwen2 share names and layout; they differ in which biases exist and in windows."""

    def convert(hf: Any, ck: _Checkpoint) -> tuple[ModelConfig, dict[str, Tensor]]:
        rope = dict(getattr(hf, "rope_parameters", None) or getattr(hf, "rope_scaling", None) or {})
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise LoadError(
                f"RoPE scaling {rope.get('rope_type')!r} is not supported (only the default RoPE)"
            )
        if getattr(hf, "hidden_act", "silu") != "silu":
            raise LoadError(f"unsupported activation {hf.hidden_act!r}; supported: silu")
        m, h, n = hf.hidden_size, hf.num_attention_heads, hf.num_hidden_layers
        kv = getattr(hf, "num_key_value_heads", None) or h
        d = getattr(hf, "head_dim", None) or m // h
        mlp, v = hf.intermediate_size, hf.vocab_size
        mlp_bias = bool(getattr(hf, "mlp_bias", False))
        cfg = ModelConfig(
            d_model=m, n_layers=n, n_heads=h, d_head=d, d_mlp=mlp, d_vocab=v, n_ctx=hf.max_position_embeddings,
            n_kv_heads=kv, norm="rmsnorm", norm_eps=hf.rms_norm_eps, act_fn="silu", gated_mlp=True,
            positional="rotary", rotary_base=float(rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0))),
            qkv_bias=qkv_bias(hf), attn_out_bias=out_bias(hf), mlp_bias=mlp_bias,
            tie_embeddings=_tied(hf, ck, "embed_tokens.weight"), attn_windows=_windows(hf, n),
        )  # fmt: skip
        sd = {"embed.W_E": ck.take("embed_tokens.weight", (v, m))}
        for i in range(n):
            src, dst = f"layers.{i}.", f"blocks.{i}."
            for name, heads in (("q", h), ("k", kv), ("v", kv)):
                w = ck.take(src + f"self_attn.{name}_proj.weight", (heads * d, m))  # Linear: [d_out, d_in]
                sd[dst + f"attn.W_{name.upper()}"] = w.reshape(heads, d, m).transpose(1, 2)
                if cfg.qkv_bias:
                    b = ck.take(src + f"self_attn.{name}_proj.bias", (heads * d,))
                    sd[dst + f"attn.b_{name.upper()}"] = b.reshape(heads, d)
            sd[dst + "attn.W_O"] = ck.take(src + "self_attn.o_proj.weight", (m, h * d)).T.reshape(h, d, m)
            if cfg.attn_out_bias:
                sd[dst + "attn.b_O"] = ck.take(src + "self_attn.o_proj.bias", (m,))
            for hf_name, ours, shape in (("gate_proj", "W_gate", (mlp, m)), ("up_proj", "W_in", (mlp, m)), ("down_proj", "W_out", (m, mlp))):  # fmt: skip
                sd[dst + f"mlp.{ours}"] = ck.take(src + f"mlp.{hf_name}.weight", shape).T
                if mlp_bias:
                    bias = "b" + ours[1:]
                    sd[dst + f"mlp.{bias}"] = ck.take(src + f"mlp.{hf_name}.bias", (shape[0],))
            sd[dst + "ln1.w"] = ck.take(src + "input_layernorm.weight", (m,))
            sd[dst + "ln2.w"] = ck.take(src + "post_attention_layernorm.weight", (m,))
        sd["ln_final.w"] = ck.take("norm.weight", (m,))
        if not cfg.tie_embeddings:
            sd["unembed.W_U"] = ck.take("lm_head.weight", (v, m)).T
        return cfg, sd

    return convert


def _tied(hf: Any, ck: _Checkpoint, embed_key: str) -> bool:
    tied = bool(getattr(hf, "tie_word_embeddings", True))
    if tied and ck.has("lm_head.weight"):
        ck.used.add("lm_head.weight")  # in-memory tied models list the shared matrix twice
    return tied


def _windows(hf: Any, n_layers: int) -> tuple[int | None, ...]:
    window = getattr(hf, "sliding_window", None)
    if not window or (hasattr(hf, "use_sliding_window") and not hf.use_sliding_window):
        return ()
    types = getattr(hf, "layer_types", None) or ["sliding_attention"] * n_layers
    return tuple(window if t == "sliding_attention" else None for t in types)


_llama = _llama_family(
    lambda hf: bool(getattr(hf, "attention_bias", False)),
    lambda hf: bool(getattr(hf, "attention_bias", False)),
)
ARCHITECTURES: dict[str, tuple[Callable, str]] = {
    # architecture -> (converter, prefix of the decoder's weights in the checkpoint)
    "GPT2LMHeadModel": (_gpt2, "transformer."),
    "LlamaForCausalLM": (_llama, "model."),
    "MistralForCausalLM": (_llama, "model."),
    "Qwen2ForCausalLM": (_llama_family(lambda hf: True, lambda hf: False), "model."),
}


def _from_hf_state(hf_cfg: Any, arch: str, state: dict[str, Tensor], tokenizer: Any) -> HookedTransformer:
    if arch not in ARCHITECTURES:
        raise LoadError(f"unsupported architecture {arch}; supported: {', '.join(ARCHITECTURES)}")
    convert, prefix = ARCHITECTURES[arch]
    ck = _Checkpoint(state, prefix)
    cfg, sd = convert(hf_cfg, ck)
    ck.check_all_used(arch)
    model = HookedTransformer(cfg, tokenizer, default_prepend_bos=True, init=False)
    _assign(model, sd, source=arch)
    return model


def _parity(model: HookedTransformer, reference: Any, atol: float) -> float:
    """Largest |logit difference| between interp and Hugging Face (eager attention) on a probe batch."""
    from transformers import AutoModelForCausalLM

    if isinstance(reference, Path):
        hf = AutoModelForCausalLM.from_pretrained(
            str(reference), attn_implementation="eager", dtype=torch.float32
        )
    else:
        hf = copy.deepcopy(reference).float()  # never touch the caller's model, not even its train/eval flag
    hf = hf.to(model.W_E.device).eval()
    gen = torch.Generator().manual_seed(0)
    probe = torch.randint(0, model.cfg.d_vocab, (2, min(16, model.cfg.n_ctx)), generator=gen).to(
        model.W_E.device
    )
    with torch.no_grad():
        diff = (model(probe).float() - hf(probe).logits.float()).abs().max().item()
    if diff > atol:
        raise ParityError(
            f"largest |logit difference| vs Hugging Face is {diff:.3g}, above the tolerance {atol:g}"
        )
    return diff
