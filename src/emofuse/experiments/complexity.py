"""Model complexity: parameters, FLOPs/MACs, peak CPU memory and latency of the registered models.

    from emofuse.experiments.complexity import model_complexity, complexity_table, format_complexity_table
    row = model_complexity("tfn", {"audio": 384, "face": 35}, {"audio": 175, "face": 1})
    print(format_complexity_table(complexity_table()))

How each number is obtained:

* **FLOPs** of one eval-mode forward pass come from ``torch.utils.flop_counter.FlopCounterMode``,
  which counts matrix multiplications, convolutions and attention (``mm``, ``bmm``, ``addmm``,
  ``convolution``, ``scaled_dot_product_attention``, ...). Element-wise operations (activations,
  normalisation, softmax) are not counted; they are a small share for these models. MACs = FLOPs / 2.
* **Peak memory** of a training-mode forward + backward pass is read from the PyTorch profiler
  (``torch.profiler.profile(profile_memory=True)``): every CPU tensor allocation and free is an event
  with a signed size; the running sum over the events in time order is the memory held by tensors
  created during the pass, and its maximum is the peak. It covers activations, saved tensors,
  temporaries and gradients, not the parameters and inputs (allocated before the pass) nor
  Python/allocator overhead. ``tracemalloc`` would not see these allocations (PyTorch allocates in C++).
* **Latency** is the median wall time over ``repeats`` timed runs after one warm-up run: eval-mode
  forward under ``torch.no_grad()``, and training-mode forward + backward (with ``zero_grad``).
"""

from __future__ import annotations

import inspect
import statistics
import time
from typing import Any

import torch

from emofuse.errors import ConfigError

#: Per-clip feature shapes ``(T, D)`` of a RAVDESS clip (about 3.5 s of speech). Frame rates:
#: Whisper states 50/s, log-mel and (FrFT-)MFCC 100/s; action units, eGeMAPS functionals, pooled
#: sentence vectors and speaker metadata are one vector per clip; text tokens: 32 MiniLM states.
RAVDESS_FEATURE_SHAPES: dict[str, tuple[int, int]] = {
    "whisper": (175, 384),
    "whisper_pooled": (1, 768),
    "logmel": (350, 128),
    "mfcc": (350, 120),
    "frft_mfcc": (350, 120),
    "egemaps": (1, 88),
    "egemaps_lld": (350, 25),
    "au": (1, 35),
    "openface_au": (1, 35),
    "minilm_tokens": (32, 384),
    "minilm_pooled": (1, 384),
    "speaker_meta": (1, 4),
    # DEAP (the corpus of the signal models): one 60 s trial resampled to 32 Hz, 32 EEG / 8 peripheral channels
    "eeg_raw": (1920, 32),
    "peripheral_raw": (1920, 8),
}


#: The recipe that defines each model's inputs and hyper-parameters in the table (the multimodal,
#: non-speaker-normalised variant where there are several).
PREFERRED_RECIPES = {
    "attention_pooling": "attention_pooling_whisper_au",
    "dual_stream": "dual_stream_mfcc",
    "early_concat": "early_concat_whisper_au",
    "gated_fusion": "gated_fusion",
    "of_cmaer_cat": "of_cmaer_cat",
    "text_audio_attention": "text_audio_attention",
    "tfn": "tfn_whisper_au",
    "tucker_fusion": "tucker",
}

SCENARIOS = ("ravdess",)


def _batch(input_dims: dict[str, int], seq_lens: dict[str, int], batch_size: int,
           seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(batch_size, int(seq_lens.get(m, 1)), d, generator=g) for m, d in input_dims.items()}
    masks = {m: torch.ones(x.shape[:2], dtype=torch.bool) for m, x in inputs.items()}
    return inputs, masks


def _loss(out, batch_size: int, num_classes: int) -> torch.Tensor:
    target = torch.arange(batch_size) % num_classes
    loss = torch.nn.functional.cross_entropy(out.logits, target)
    return loss + sum(out.aux_losses.values(), torch.zeros(()))


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, lazy initialisation)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def forward_flops(model: torch.nn.Module, inputs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward pass (matmuls, convolutions, attention), counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(inputs, masks)
    return int(counter.get_total_flops())


def peak_train_memory_bytes(model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                            masks: dict[str, torch.Tensor]) -> int:
    """Peak bytes held by CPU tensors allocated during one forward + backward pass.

    Uses the profiler's allocation events (``profile_memory=True``): the maximum of the running sum
    of allocation sizes (frees are negative) in time order.
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    batch_size = next(iter(inputs.values())).shape[0]
    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _loss(model(inputs, masks), batch_size, model.num_classes).backward()
    model.zero_grad(set_to_none=True)
    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and str(node.extra_fields.device).startswith("cpu"):
            events.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
        stack.extend(node.children)
    events.sort()
    held = peak = 0
    for _, size in events:
        held += size
        peak = max(peak, held)
    return peak


def model_complexity(name: str, input_dims: dict[str, int], seq_lens: dict[str, int], num_classes: int = 8,
                     batch_size: int = 16, model_kwargs: dict[str, Any] | None = None,
                     repeats: int = 3) -> dict[str, Any]:
    """Parameters, forward FLOPs/MACs, peak forward+backward CPU memory and median latency of one model.

    ``seq_lens`` gives T per modality (missing: 1). All frames are valid (no padding). Memory is
    measured with the PyTorch profiler's allocation events (see the module docstring); latency uses
    the current ``torch.get_num_threads()`` threads, which the result records.
    """
    from emofuse.models import create_model

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, input_dims=dict(input_dims), **dict(model_kwargs or {}))
    inputs, masks = _batch(input_dims, seq_lens, batch_size)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    model.eval()
    flops = forward_flops(model, inputs, masks)

    def forward() -> None:
        with torch.no_grad():
            model(inputs, masks)

    forward_ms = _median_ms(forward, repeats)

    model.train()
    peak = peak_train_memory_bytes(model, inputs, masks)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        _loss(model(inputs, masks), batch_size, num_classes).backward()

    train_ms = _median_ms(train_step, repeats)
    return {
        "model": name,
        "input_dims": dict(input_dims),
        "seq_lens": {m: int(seq_lens.get(m, 1)) for m in input_dims},
        "model_kwargs": dict(model_kwargs or {}),
        "num_classes": num_classes,
        "batch_size": batch_size,
        "params_total": int(total),
        "params_trainable": int(trainable),
        "forward_flops": flops,
        "forward_macs": flops // 2,
        "peak_train_memory_mb": peak / 2**20,
        "forward_ms": forward_ms,
        "train_step_ms": train_ms,
        "repeats": int(repeats),
        "threads": torch.get_num_threads(),
    }


def _recipe_for(name: str):
    from emofuse.recipes import builtin_recipe_names, load_recipe

    if name in PREFERRED_RECIPES:
        return load_recipe(PREFERRED_RECIPES[name])
    for recipe_name in builtin_recipe_names():
        if recipe_name.endswith("_spkn"):
            continue
        try:
            recipe = load_recipe(recipe_name)
        except ConfigError:  # not a recipe (the ablation ladder)
            continue
        if recipe.model == name:
            return recipe
    return None


def _default_feature(modality: str) -> str:
    """Feature used for a modality when a model has no recipe (the modality registry's default)."""
    from emofuse.data.modalities import get_modality, list_modalities

    feature = get_modality(modality).default_feature if modality in list_modalities() else None
    return feature or "whisper"


def _modality_shape(modality: str, features: list[str], source: str) -> tuple[int, int]:
    unknown = [f for f in features if f not in RAVDESS_FEATURE_SHAPES]
    if unknown:
        raise ConfigError(f"{source}: no RAVDESS input shape known for feature(s) {unknown} ({modality})")
    shapes = [RAVDESS_FEATURE_SHAPES[f] for f in features]
    if len(shapes) == 1:
        return shapes[0]
    if any(t != 1 for t, _ in shapes):
        raise ConfigError(f"{source}: {modality} concatenates frame-level features {features}; only vectors concatenate")
    return 1, sum(d for _, d in shapes)


def scenario_spec(name: str, scenario: str = "ravdess") -> dict[str, Any]:
    """Input dims, sequence lengths, model kwargs and the source (recipe or class defaults) of one model."""
    from emofuse.models.registry import _REGISTRY, _ensure_loaded

    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown complexity scenario {scenario!r}; available: {', '.join(SCENARIOS)}")
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    recipe = _recipe_for(name)
    if recipe is not None:
        features, kwargs, source = recipe.features, dict(recipe.model_kwargs), f"recipe {recipe.name}"
    else:
        mods = list(getattr(_REGISTRY[name], "test_input_dims", {"audio": 0, "face": 0}))
        features = {m: [_default_feature(m)] for m in mods}
        kwargs, source = {}, "class defaults"
    shapes = {m: _modality_shape(m, feats, source) for m, feats in features.items()}
    # Per-clip vectors are declared to models that distinguish them, as the benchmark does.
    params = inspect.signature(_REGISTRY[name]).parameters
    if "vector_modalities" in params:
        kwargs.setdefault("vector_modalities", [m for m, (t, _) in shapes.items() if t == 1])
    return {"input_dims": {m: d for m, (_, d) in shapes.items()}, "seq_lens": {m: t for m, (t, _) in shapes.items()},
            "model_kwargs": kwargs, "features": {m: list(f) for m, f in features.items()}, "source": source}


def complexity_table(names: list[str] | None = None, scenario: str = "ravdess", batch_size: int = 16,
                     num_classes: int = 8, repeats: int = 3) -> list[dict[str, Any]]:
    """:func:`model_complexity` of every registered model (or ``names``) on realistic inputs."""
    from emofuse.models import list_models

    rows = []
    for name in names or list_models():
        spec = scenario_spec(name, scenario)
        row = model_complexity(name, spec["input_dims"], spec["seq_lens"], num_classes=num_classes,
                               batch_size=batch_size, model_kwargs=spec["model_kwargs"], repeats=repeats)
        row.update(scenario=scenario, features=spec["features"], source=spec["source"])
        rows.append(row)
    return rows


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f}"


def format_complexity_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`model_complexity` rows."""
    header = ("| model | inputs (T×D) | params | forward MACs | forward FLOPs | peak train memory (MB) "
              "| forward ms / batch | train step ms / batch |")
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        shapes = ", ".join(f"{m} {r['seq_lens'][m]}×{d}" for m, d in r["input_dims"].items())
        lines.append(f"| {r['model']} | {shapes} | {_count(r['params_total'])} | {_count(r['forward_macs'])} | "
                     f"{_count(r['forward_flops'])} | {r['peak_train_memory_mb']:.1f} | {r['forward_ms']:.1f} | "
                     f"{r['train_step_ms']:.1f} |")
    if rows:
        r = rows[0]
        lines.append("")
        lines.append(f"Batch size {r['batch_size']}, {r['num_classes']} classes, median of {r['repeats']} runs, "
                     f"{r['threads']} CPU thread(s).")
    return "\n".join(lines) + "\n"
