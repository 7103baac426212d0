r"""Parametrizations: how initialisation, learning rates and multipliers scale with the shape.

One table holds every rule; the model and the optimizer ask this module and hold no
``if mup:`` branches. ``ModelConfig.parametrization`` picks a column:

- ``"sp"``: standard parametrization, GPT-2 / nanoGPT (today's behaviour, the default).
- ``"mup"``: maximal update parametrization for Adam (Yang et al. 2022, "Tensor Programs V",
  arXiv:2203.03466, Table 3, in the equivalent form of its Table 8, where the readout gets a
  1/fan_in output multiplier instead of a width-dependent init and LR): the optimal LR stops
  depending on the width.
- ``"completep"``: muP plus the depth rules of Dey et al. 2025 ("Don't be lazy: CompleteP enables
  compute-efficient deep transformers", arXiv:2505.01618, Table 1, alpha = 1): the optimal LR
  stops depending on the depth as well.

Symbols: ``m_N = d_model / base_d_model`` (width multiplier), ``m_L = n_layers / base_n_layers``
(depth multiplier), ``alpha = 1`` (``DEPTH_ALPHA``), ``sigma`` the base init std
(``ModelConfig.init_std``, default 0.02 = ``INIT_STD``, GPT-2's), ``eta`` the configured peak
LR, ``eps`` Adam's epsilon, ``lambda`` the weight decay, ``L = n_layers``. Under muP and
CompleteP, sigma is the base width's init, a tunable there like eta (Dey, Anthony & Hestness
2024, "The practitioner's guide to muP", sigma_base); every other width inherits it.

========================  ===============  =====================  =================================
quantity / role           sp               mup                    completep
========================  ===============  =====================  =================================
init std  embedding       sigma            sigma                  sigma
init std  hidden          sigma            sigma m_N^-1/2         sigma m_N^-1/2
init std  residual out    sigma/sqrt(2L)   sigma m_N^-1/2         sigma m_N^-1/2 / sqrt(2 L_base)
                                           / sqrt(2L)
init std  readout         sigma            sigma                  sigma
init      vector          1 (gain), 0      1, 0                   1, 0
LR        embedding       eta              eta                    eta
LR        hidden          eta              eta m_N^-1             eta m_N^-1 m_L^(alpha-1)
LR        readout         eta              eta                    eta
LR        vector          eta              eta                    eta
LR        block_vector    eta              eta                    eta m_L^(alpha-1)
Adam eps  hidden          eps              eps m_N^-1             eps m_N^-1 m_L^-alpha
Adam eps  block_vector    eps              eps m_N^-1             eps m_N^-1 m_L^-alpha
Adam eps  other roles     eps              eps m_N^-1             eps m_N^-1
weight decay hidden       lambda           lambda m_N             lambda m_N m_L^(1-alpha)
weight decay readout      lambda           lambda                 lambda
weight decay emb., vec.   0                0                      0
output (logit) mult.      1                m_N^-1                 m_N^-1
residual-branch mult.     1                1                      m_L^-alpha
attention scale           d_head^-1/2      d_head^-1              d_head^-1
========================  ===============  =====================  =================================

Roles (``role_of``), from parameter names, module types and ``ndim`` only, so any model family
gets them: ``embedding`` (the weight of an ``nn.Embedding``: token and position tables, and a
readout tied to the token table), ``readout`` (the weight of the Linear named ``lm_head`` or
``output``: the unembedding), ``vector`` (``ndim < 2``: norm gains and biases) split into
``block_vector`` when the name holds a layer index (``blocks.3.ln_1.weight``: inside a residual
block, which CompleteP's depth rules touch) and ``vector`` outside (final norm), and ``hidden``
(every other matrix: QKV, attention output, MLP). A family marks the Linears that write into the
residual stream with ``module.is_residual_proj = True`` (GPT-2's depth-scaled init).

Why each rule:

- Hidden matrices: muP's 1/fan_in init variance and, for Adam, an LR proportional to 1/fan_in
  (Table 3, "hidden weights"), written relative to the base width so that at ``m_N = 1`` muP
  is SP. All hidden fan-ins (``d_model``, ``d_mlp``, ``d_head * n_heads``) are assumed to grow
  with ``d_model`` (the MLP ratio is fixed), so ``m_N`` stands for every fan-in ratio.
- Readout: we choose the *output multiplier* ``m_N^-1`` on the logits (Table 8's "output weights:
  multiplier 1/fan_in, LR 1 for Adam"), not the zero-initialised readout that Yang et al. also
  recommend. Reasons: it keeps muP identical to SP at the base width (a zero readout would not
  be), it works with tied embeddings (embedding and readout share one tensor whose role is
  embedding-like under this form), and the coordinate check can measure logits at step 0. The
  readout keeps SP's init and LR.
- Embeddings and vectors: width-independent init and LR (Table 3, "input weights & all biases").
- Attention: ``1/d_head`` instead of ``1/sqrt(d_head)`` (Yang et al. 2022, Sec. 4 / Appendix B,
  "attention logit scaling"): q and k become correlated during training, so ``q.k`` grows like
  ``d_head``. At the same ``d_head`` it makes the scores ``sqrt(d_head)`` times smaller than SP's,
  so muP and SP differ at the base shape unless ``d_head = 1``.
- Adam epsilon: gradients of every role shrink like ``1/width`` under muP (the output multiplier
  scales every backpropagated gradient), so epsilon follows them to stay negligible; CompleteP's
  residual multiplier shrinks the gradients inside blocks by a further ``m_L^-alpha`` (Dey et al.
  2025, Table 1 and the epsilon rule, their Eq. 40).
- Depth (CompleteP, alpha = 1): each residual branch's output is multiplied by ``m_L^-1``, the
  hidden and in-block vector LRs by ``m_L^(alpha-1) = 1``, and the GPT-2 ``1/sqrt(2L)`` init of
  residual outputs is frozen at the base depth (the multiplier does the depth scaling instead).
  At ``m_N = m_L = 1`` CompleteP equals muP.
- Weight decay: torch's AdamW shrinks a weight by ``lr * lambda`` per step (decoupled). To keep
  that product, and with it the decay timescale ``1 / (lr * lambda)``, independent of the shape
  (Wang & Aitchison 2024, "How to set AdamW's weight decay as you scale model and dataset size",
  arXiv:2405.13698; the same choice as Dey et al. 2025's reference code), a group's decay is
  ``lambda`` divided by its LR multiplier: hidden matrices get ``lambda m_N`` under muP. As in SP,
  embeddings, norms and biases are not decayed.

Where the rules coincide with SP: at the base shape (``d_model = base_d_model``,
``n_layers = base_n_layers``) every init, LR multiplier, epsilon, weight decay, the output and
residual multipliers are SP's; only the attention scale differs (equal at ``d_head = 1``).

Why not microsoft's ``mup`` package: it covers width only (no depth rules, no CompleteP), wants a
base-shape file built from instantiated base and delta models, replaces Linear layers with its
own ``MuReadout`` and optimizers with ``MuAdam`` (so every model family and the fused AdamW would
have to change), scales neither Adam's epsilon nor the weight decay, and has had no release since
2022. The rules are a few exponents; one table here serves every family and both optimizers'
parameter groups.

Only AdamW is covered: muP's SGD column differs (Table 3) and is not implemented; a config asking
for muP with SGD is refused (``scaling.config.RunConfig``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily: config.json and analysis stay torch-free
    from torch import nn

    from scaling.config import ModelConfig, RunConfig

PARAMETRIZATIONS = ("sp", "mup", "completep")
ROLES = ("hidden", "readout", "embedding", "vector", "block_vector")
INIT_STD = 0.02  # default sigma (ModelConfig.init_std): GPT-2 / nanoGPT initialisation scale
DEPTH_ALPHA = 1.0  # CompleteP's alpha (Dey et al. 2025): residual multiplier m_L^-alpha
READOUT_NAMES = ("lm_head", "output")  # module names of the unembedding Linear
_LAYER_INDEX = re.compile(r"\.\d+\.")  # "blocks.3.ln_1.weight": inside residual block 3

# The table, as exponents (of m_N, of m_L) per role: quantity = base value * m_N^a * m_L^b.
# The docstring table is the readable copy of these numbers.
_A = DEPTH_ALPHA
_ZERO = dict.fromkeys(ROLES, (0.0, 0.0))
_TABLE: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "sp": {"init": _ZERO, "lr": _ZERO, "eps": _ZERO},
    "mup": {
        "init": {**_ZERO, "hidden": (-0.5, 0.0)},
        "lr": {**_ZERO, "hidden": (-1.0, 0.0)},
        "eps": dict.fromkeys(ROLES, (-1.0, 0.0)),
    },
    "completep": {
        "init": {**_ZERO, "hidden": (-0.5, 0.0)},
        "lr": {**_ZERO, "hidden": (-1.0, _A - 1.0), "block_vector": (0.0, _A - 1.0)},
        "eps": {
            **dict.fromkeys(ROLES, (-1.0, 0.0)),
            "hidden": (-1.0, -_A),
            "block_vector": (-1.0, -_A),
        },
    },
}
# exponents of (m_N, m_L) for the forward multipliers; the attention scale is
# 1 / sqrt(d_head) ** _ATTN (SP: exactly SDPA's default 1 / sqrt(d_head); muP: 1 / d_head)
_OUTPUT = {"sp": (0.0, 0.0), "mup": (-1.0, 0.0), "completep": (-1.0, 0.0)}
_RESIDUAL = {"sp": (0.0, 0.0), "mup": (0.0, 0.0), "completep": (0.0, -_A)}
_ATTN = {"sp": 1, "mup": 2, "completep": 2}
_DECAYED = ("hidden", "readout")  # roles with weight decay (SP's choice: matrices of Linears)


@dataclass(frozen=True)
class Rules:
    """The resolved rules of one model shape (``rules(model_cfg)``).

    Attributes:
        name: ``"sp"``, ``"mup"`` or ``"completep"``.
        width_multiplier: ``m_N = d_model / base_d_model`` (1 for SP).
        depth_multiplier: ``m_L = n_layers / base_n_layers`` (1 for SP and muP).
        init_depth: ``L`` in the ``sigma / sqrt(2L)`` init of residual outputs: ``n_layers``,
            or ``base_n_layers`` for CompleteP.
        sigma: the base init std (``ModelConfig.init_std``; default ``INIT_STD`` = 0.02).
    """

    name: str
    width_multiplier: float
    depth_multiplier: float
    init_depth: int
    sigma: float = INIT_STD

    def _scale(self, exponents: tuple[float, float]) -> float:
        a, b = exponents
        return self.width_multiplier**a * self.depth_multiplier**b

    def attn_scale(self, d_head: int) -> float:
        """Factor on ``q.k``: ``d_head^-1/2`` (SP) or ``d_head^-1`` (muP, CompleteP)."""
        return 1.0 / math.sqrt(d_head) ** _ATTN[self.name]

    @property
    def output_multiplier(self) -> float:
        """Factor on the logits: 1 (SP) or ``m_N^-1`` (Yang et al. 2022, Table 8)."""
        return self._scale(_OUTPUT[self.name])

    @property
    def residual_multiplier(self) -> float:
        """Factor on each residual branch's output: 1, or ``m_L^-alpha`` (CompleteP)."""
        return self._scale(_RESIDUAL[self.name])

    def init_std(self, role: str, *, residual_proj: bool = False) -> float:
        """Initial standard deviation of a matrix of ``role`` (``vector``s are 1 / 0 instead).

        ``sigma`` times the role's factor in the table (module docstring), times
        ``1 / sqrt(2 init_depth)`` for residual outputs (GPT-2, Radford et al. 2019, Sec. 2.3).
        """
        std = self.sigma * self._scale(_TABLE[self.name]["init"][role])
        return std / math.sqrt(2 * self.init_depth) if residual_proj else std

    def lr_multiplier(self, role: str) -> float:
        """The group's LR divided by the configured peak LR."""
        return self._scale(_TABLE[self.name]["lr"][role])

    def eps(self, role: str, eps: float) -> float:
        """Adam epsilon of ``role`` given the configured ``eps``."""
        return eps * self._scale(_TABLE[self.name]["eps"][role])

    def weight_decay(self, role: str, weight_decay: float) -> float:
        """Decoupled weight decay of ``role``: ``lambda / lr_multiplier`` on decayed roles, else 0.

        Keeps ``lr * lambda`` (the per-step shrink of AdamW) shape-independent; see the module
        docstring (Wang & Aitchison 2024).
        """
        return weight_decay / self.lr_multiplier(role) if role in _DECAYED else 0.0


def rules(model_cfg: ModelConfig) -> Rules:
    """The rules of ``model_cfg``'s shape under its ``parametrization``.

    ``ModelConfig`` has validated the fields (base widths present where needed).
    """
    name = model_cfg.parametrization
    base_d = model_cfg.base_d_model or model_cfg.d_model
    base_l = model_cfg.base_n_layers or model_cfg.n_layers
    return Rules(
        name=name,
        width_multiplier=model_cfg.d_model / base_d,
        depth_multiplier=model_cfg.n_layers / base_l,
        init_depth=base_l if name == "completep" else model_cfg.n_layers,
        sigma=model_cfg.init_std,
    )


def inherited_fields(model_cfg: ModelConfig) -> dict[str, Any]:
    """The parametrization fields of ``model_cfg``, for shapes derived from it (sweeps)."""
    return {
        "parametrization": model_cfg.parametrization,
        "base_d_model": model_cfg.base_d_model,
        "base_n_layers": model_cfg.base_n_layers,
        "init_std": model_cfg.init_std,
    }


def role_of(name: str, param: Any, embedding_ids: set[int]) -> str:
    """Role of one parameter (module docstring), from its name, ``ndim`` and identity.

    Args:
        name: the parameter's name in ``model.named_parameters()`` (e.g. ``"lm_head.weight"``).
        param: the tensor.
        embedding_ids: ``id()`` of every ``nn.Embedding`` weight of the model.

    Returns:
        One of ``ROLES``.
    """
    if param.ndim < 2:
        return "block_vector" if _LAYER_INDEX.search("." + name) else "vector"
    if id(param) in embedding_ids:
        return "embedding"
    parts = name.split(".")
    if len(parts) >= 2 and parts[-2] in READOUT_NAMES:
        return "readout"
    return "hidden"


def _embedding_ids(model: nn.Module) -> set[int]:
    from torch import nn

    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def init_weights(model: nn.Module, model_cfg: ModelConfig) -> None:
    """(Re)initialise every parameter of ``model`` in place by the table (module docstring).

    Linear and Embedding weights are drawn from ``N(0, init_std(role)^2)`` (Linears marked
    ``is_residual_proj`` get the ``1/sqrt(2L)`` factor); a Linear whose weight is an embedding's
    (a tied readout) is skipped, being initialised as the embedding; every other leaf module with
    ``reset_parameters`` (LayerNorm, RMSNorm: gains 1, biases 0) resets itself. Modules are
    visited in ``model.modules()`` order with the global torch RNG, so ``torch.manual_seed(s)``
    before building gives a deterministic model, and SP draws exactly GPT-2's numbers.
    """
    import torch
    from torch import nn

    r = rules(model_cfg)
    embedding_ids = _embedding_ids(model)
    names = {id(m): n for n, m in model.named_modules()}
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                if id(module.weight) in embedding_ids:
                    continue  # tied readout: the shared tensor is initialised as the embedding
                role = role_of(names[id(module)] + ".weight", module.weight, embedding_ids)
                resid = bool(getattr(module, "is_residual_proj", False))
                nn.init.normal_(module.weight, mean=0.0, std=r.init_std(role, residual_proj=resid))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=r.init_std("embedding"))
            elif not any(True for _ in module.children()) and hasattr(module, "reset_parameters"):
                module.reset_parameters()


def param_groups(
    model: nn.Module, model_cfg: ModelConfig, *, weight_decay: float, eps: float = 1e-8
) -> list[dict[str, Any]]:
    """Optimizer parameter groups carrying the table's LR multiplier, epsilon and weight decay.

    Parameters whose roles get identical settings share a group (SP: exactly GPT-2's two
    groups, decayed matrices then the rest, in ``model.parameters()`` order, so old checkpoints'
    optimizer states still load). Groups are ordered by their first role in ``ROLES``.

    Args:
        model: any model family (roles come from names, module types and ``ndim``).
        model_cfg: its shape and parametrization.
        weight_decay: the configured decoupled weight decay ``lambda`` (>= 0).
        eps: the configured Adam epsilon.

    Returns:
        ``[{"params": [...], "name": "hidden+readout", "roles": [...], "lr_multiplier": float,
        "weight_decay": float, "eps": float}, ...]``; ``scaling.optim.set_lr`` sets each group's
        ``lr`` to the schedule's LR times its ``lr_multiplier``.

    Raises:
        ValueError: ``weight_decay`` is negative.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    r = rules(model_cfg)
    embedding_ids = _embedding_ids(model)
    groups: dict[tuple[float, float, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():  # de-duplicated: a tied weight appears once
        role = role_of(name, p, embedding_ids)
        key = (r.lr_multiplier(role), r.weight_decay(role, weight_decay), r.eps(role, eps))
        group = groups.setdefault(
            key,
            {"params": [], "roles": [], "lr_multiplier": key[0], "weight_decay": key[1]},
        )
        group["eps"] = key[2]
        group["params"].append(p)
        if role not in group["roles"]:
            group["roles"].append(role)
    out = sorted(groups.values(), key=lambda g: min(ROLES.index(x) for x in g["roles"]))
    for g in out:
        g["roles"].sort(key=ROLES.index)
        g["name"] = "+".join(g["roles"])
    return out


def describe(cfg: RunConfig) -> dict[str, Any]:
    """What ``config.json`` records under ``"parametrization"`` (torch-free).

    Returns:
        ``{"name", "width_multiplier", "depth_multiplier", "attn_scale", "output_multiplier",
        "residual_multiplier", "groups": {role: {"lr", "lr_multiplier", "weight_decay", "eps",
        "init_std"}}}`` where ``lr`` is the effective peak LR of that role's group
        (``optim.lr * lr_multiplier``); ``init_std`` is ``None`` for vectors (gains 1, biases 0)
        and, for hidden matrices, the std of non-residual-output matrices.
    """
    r = rules(cfg.model)
    o = cfg.optim
    groups = {}
    for role in ROLES:
        mult = r.lr_multiplier(role)
        groups[role] = {
            "lr": o.lr * mult,
            "lr_multiplier": mult,
            "weight_decay": r.weight_decay(role, o.weight_decay),
            "eps": r.eps(role, o.eps),
            "init_std": None if role.endswith("vector") else r.init_std(role),
        }
    return {
        "name": r.name,
        "width_multiplier": r.width_multiplier,
        "depth_multiplier": r.depth_multiplier,
        "attn_scale": r.attn_scale(cfg.model.d_head),
        "output_multiplier": r.output_multiplier,
        "residual_multiplier": r.residual_multiplier,
        "groups": groups,
    }
