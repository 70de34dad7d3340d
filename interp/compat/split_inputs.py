"""TransformerLens's per-head attention inputs: `hook_attn_in` and `hook_q_input` / `k_input` / `v_input`.

Each is resid_pre repeated along a head axis ([batch, pos, head, d_model]; kv heads for k and v), so a hook
can patch what one head reads without touching the others (ARENA's IOI path patching). They cost n_heads
copies of the residual stream, so the block takes this path only while one of them is hooked. The two
kinds are alternatives, as TL's `use_attn_in` and `use_split_qkv_input` are: hook one kind per block.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from interp.layers.sequence_info import SequenceInfo


def per_head_inputs_hooked(block: Any) -> bool:
    return (
        block.hook_attn_in.active
        or block.hook_q_input.active
        or block.hook_k_input.active
        or block.hook_v_input.active
    )


def _repeat(x: Tensor, n: int) -> Tensor:
    return x[:, :, None, :].expand(x.shape[0], x.shape[1], n, x.shape[2]).clone()  # own memory per head


def split_attention(block: Any, resid_pre: Tensor, seq: SequenceInfo) -> Tensor:
    attn = block.attn
    h, kv = attn.n_heads, attn.n_kv_heads
    split = block.hook_q_input.active or block.hook_k_input.active or block.hook_v_input.active
    if split and block.hook_attn_in.active:
        raise ValueError(
            f"{block.hook_attn_in.name} and hook_q/k/v_input are alternatives (TL's use_attn_in vs "
            "use_split_qkv_input): hook one kind per block"
        )
    if split:
        q_in = block.hook_q_input(_repeat(resid_pre, h))
        k_in = block.hook_k_input(_repeat(resid_pre, kv))
        v_in = block.hook_v_input(_repeat(resid_pre, kv))
    else:
        attn_in = block.hook_attn_in(_repeat(resid_pre, h))
        # Grouped-query: a kv head reads the input of the first query head of its group.
        q_in, k_in = attn_in, attn_in[:, :, :: h // kv]
        v_in = k_in
    return attn.forward_per_head_inputs(block.ln1(q_in), block.ln1(k_in), block.ln1(v_in), seq)
