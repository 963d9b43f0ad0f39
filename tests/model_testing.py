"""Common model tests, written once and applied to every model of every paper.

In the spirit of `transformers`' `ModelTesterMixin`: a test class declares *how to build a tiny
model and its inputs*; the mixin supplies the tests. Use it as

```python
class TestResNet18(ModelTesterMixin):
    image_size = 64                                   # read by image_bad_inputs()
    def build_model(self): return resnet18(num_classes=5)
    def build_inputs(self, batch_size): return {"images": torch.rand(batch_size, 3, 64, 64)}
    def bad_inputs(self): return self.image_bad_inputs("images", min_size=32)
```

What a subclass provides (only `build_model` and `build_inputs` are required):

- `build_model()` -> `nn.Module`: a tiny model from a config with random weights. The mixin seeds it
  (`make_model(seed)`), so two builds with the same seed must give the same weights.
- `build_inputs(batch_size)` -> dict of forward kwargs (seeded by `make_inputs`).
- `outputs(model, **inputs)` -> Tensor, tuple or dict of tensors to compare (default: `model(**inputs)`).
- `bad_inputs()` -> list of `BadInput(description, inputs, error, match)` (or plain 4-tuples): each must raise
  `error` with every string of `match` in its message (case-insensitive). `image_bad_inputs()` builds the
  standard list for image models (wrong rank, channels, size, empty batch, NaN/inf pixels).
- `model_config(model)` -> dict stored in the checkpoint's metadata (default: `model.config`, a dict or a
  `vlnotes.core.Config` via `to_dict()`).
- `make_other_architecture()` -> a model whose checkpoint must NOT load into ours (default: a small generic
  module of another class); `make_variant_model()` -> same class, different config (default `None`: skipped).
- `expected_output_shapes(batch_size)` -> dict name -> shape, checked when given (default `None`).
- `split_example(inputs, i)` -> the kwargs of example `i` alone (default: slice every batched tensor/list).
- Tolerances / knobs: `batch_size`, `batch_atol`, `batch_rtol`, `bf16_rel_tol`, `params_without_grad`.

To drop a common test for one model (say why in a comment), set it to `None` in the subclass:
`test_load_corrupted_checkpoint_raises = None`.

Each test builds tiny models on CPU and must stay well under a second or two: CI has 2 cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest
import torch
from torch import nn


@dataclass
class BadInput:
    "One invalid input: forward kwargs that must raise `error` whose message holds every string of `match`."
    description: str
    inputs: dict
    error: type = ValueError
    match: tuple = ()

    @classmethod
    def coerce(cls, case) -> "BadInput":
        if isinstance(case, BadInput): return case
        desc, inputs, error, match = case
        return cls(desc, inputs, error, (match,) if isinstance(match, str) else tuple(match))


def flatten_outputs(out: Any, prefix: str = "output") -> dict[str, torch.Tensor]:
    "Turn a Tensor / tuple / dict (or HF ModelOutput) of outputs into a flat `{name: tensor}` dict."
    if isinstance(out, torch.Tensor): return {prefix: out}
    if isinstance(out, Mapping):
        flat = {}
        for k, v in out.items(): flat.update(flatten_outputs(v, f"{prefix}.{k}"))
        return flat
    if isinstance(out, (tuple, list)):
        flat = {}
        for i, v in enumerate(out): flat.update(flatten_outputs(v, f"{prefix}.{i}"))
        return flat
    return {}  # non-tensor leaves (None, strings, ...) are not compared


def assert_outputs_close(a: dict, b: dict, atol: float = 0.0, rtol: float = 0.0, what: str = "outputs"):
    "Same keys, same shapes, values within tolerance; the message names the worst key and difference."
    assert a.keys() == b.keys(), f"{what}: different output keys {sorted(a)} vs {sorted(b)}"
    for k in a:
        x, y = a[k].detach().float(), b[k].detach().float()
        assert x.shape == y.shape, f"{what}: {k} has shape {tuple(x.shape)} vs {tuple(y.shape)}"
        if not torch.allclose(x, y, atol=atol, rtol=rtol):
            raise AssertionError(f"{what}: {k} differs, max abs diff {(x - y).abs().max().item():.3g} "
                                 f"(atol={atol}, rtol={rtol})")


class _OtherArchitecture(nn.Module):
    "A small model of another class: its checkpoint must not load into the model under test."
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(7, 3)
        self.norm = nn.LayerNorm(3)


class ModelTesterMixin:
    "Mix into a `Test*` class that defines `build_model` and `build_inputs`; see the module docstring."
    batch_size: int = 3             # >= 2 so BatchNorm works in train mode
    batch_atol: float = 1e-5        # batched vs one-by-one, eval mode: |a - b| <= atol + rtol * |b|
    batch_rtol: float = 1e-5        # (fp32 sums in another order; large random-init logits need the relative part)
    bf16_rel_tol: float = 0.05      # ||bf16 - fp32|| / ||fp32|| under CPU bf16 autocast (ResNets measure < 0.01)
    params_without_grad: Sequence[str] = ()   # parameter names allowed to get no gradient
    image_size: int | tuple[int, int] | None = None  # for image_bad_inputs
    channels: int = 3

    # ---- what a subclass provides -------------------------------------------------------------
    def build_model(self) -> nn.Module: raise NotImplementedError
    def build_inputs(self, batch_size: int) -> dict: raise NotImplementedError
    def outputs(self, model: nn.Module, **inputs) -> Any: return model(**inputs)
    def bad_inputs(self) -> list: return []
    def model_config(self, model: nn.Module) -> dict | None:
        cfg = getattr(model, "config", None)
        if hasattr(cfg, "to_dict"): cfg = cfg.to_dict()   # a vlnotes.core.Config
        return cfg if isinstance(cfg, dict) else None
    def make_other_architecture(self) -> nn.Module: return _OtherArchitecture()
    def make_variant_model(self) -> nn.Module | None: return None
    def expected_output_shapes(self, batch_size: int) -> dict | None: return None

    # ---- helpers -------------------------------------------------------------------------------
    def make_model(self, seed: int = 0) -> nn.Module:
        "Build the model with `seed` without disturbing the global RNG."
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.build_model()

    def make_inputs(self, batch_size: int | None = None, seed: int = 1234) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.build_inputs(self.batch_size if batch_size is None else batch_size)

    def run(self, model: nn.Module, inputs: dict, grad: bool = False) -> dict[str, torch.Tensor]:
        with torch.set_grad_enabled(grad):
            return flatten_outputs(self.outputs(model, **inputs))

    def split_example(self, inputs: dict, i: int) -> dict:
        "Example `i` of a batch as a batch of one: slice tensors and lists whose length is the batch size."
        n = self.batch_size
        def one(v):
            if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n: return v[i:i + 1]
            if isinstance(v, list) and len(v) == n: return v[i:i + 1]
            return v
        return {k: one(v) for k, v in inputs.items()}

    def image_bad_inputs(self, key: str = "images", min_size: int | None = None,
                         extra: Mapping[str, Any] | None = None) -> list[BadInput]:
        """The standard bad image batches for a model reading `(B, C, H, W)` floats under `key`.

        Every message must name the argument (`key`), what was expected and what was received (shape, size...)."""
        c = self.channels
        h, w = (self.image_size, self.image_size) if isinstance(self.image_size, int) else tuple(self.image_size)
        extra = dict(extra or {})
        def case(desc, x, match, error=ValueError):  # the message names the argument too: which input is wrong
            return BadInput(desc, {key: x, **extra}, error, (key, *match))
        wrong_c = 1 if c != 1 else 3
        nan = torch.rand(2, c, h, w); nan[0, 0, 0, 0] = float("nan")
        inf = torch.rand(2, c, h, w); inf[1, -1, -1, -1] = float("inf")
        cases = [
            case("rank 3 (missing batch dim)", torch.rand(c, h, w), ["expected", "4", f"({c}, {h}, {w})"]),
            case("rank 5", torch.rand(1, 2, c, h, w), ["expected", f"(1, 2, {c}, {h}, {w})"]),
            case(f"{wrong_c} channel(s)", torch.rand(2, wrong_c, h, w), ["expected", str(c), f"(2, {wrong_c}, {h}, {w})"]),
            case("channels-last layout", torch.rand(2, h, w, c), ["expected", f"(2, {h}, {w}, {c})"]),
            case("empty batch", torch.rand(0, c, h, w), ["expected", "batch", "0"]),
            case("NaN pixel", nan, ["expected", "finite", "nan"]),
            case("inf pixel", inf, ["expected", "finite", "inf"]),
            case("not a tensor", [[0.0] * w] * h, ["expected", "tensor", "list"], TypeError),
            case("integer pixels", torch.randint(0, 255, (2, c, h, w), dtype=torch.uint8), ["expected", "float", "uint8"]),
        ]
        if min_size is not None and min_size > 1:
            s = min_size - 1
            cases.append(case(f"image {s}x{s} below the minimum {min_size}", torch.rand(2, c, s, s),
                              ["expected", str(min_size), str(s)]))
        return cases

    # ---- pytest: parametrise test_bad_input over bad_inputs() ----------------------------------
    def pytest_generate_tests(self, metafunc):
        if "bad_input" in metafunc.fixturenames:
            cases = [BadInput.coerce(c) for c in self.bad_inputs()]
            if not cases:
                metafunc.parametrize("bad_input", [None], ids=["none-declared"])
            else:
                metafunc.parametrize("bad_input", cases, ids=[c.description for c in cases])

    # ---- the common tests ----------------------------------------------------------------------
    def test_forward_shapes_and_finite(self):
        model = self.make_model().eval()
        out = self.run(model, self.make_inputs())
        assert out, "the model returned no tensors"
        for k, v in out.items():
            assert torch.isfinite(v.float()).all(), f"{k} holds non-finite values"
        shapes = self.expected_output_shapes(self.batch_size)
        if shapes is not None:
            for k, s in shapes.items():
                key = k if k in out else f"output.{k}" if f"output.{k}" in out else k
                assert key in out, f"expected output {k!r}, got {sorted(out)}"
                assert tuple(out[key].shape) == tuple(s), f"{k}: expected shape {tuple(s)}, got {tuple(out[key].shape)}"

    def test_same_seed_same_model(self):
        a, b = self.make_model(seed=0).eval(), self.make_model(seed=0).eval()
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa: assert torch.equal(sa[k], sb[k]), f"{k} differs between two builds with the same seed"
        inputs = self.make_inputs()
        assert_outputs_close(self.run(a, inputs), self.run(b, inputs), what="same seed")

    def test_different_seed_different_model(self):
        "Guards the other tests: if seeds did not matter, the save/load test could pass vacuously."
        a, b = self.make_model(seed=0), self.make_model(seed=1)
        sa, sb = a.state_dict(), b.state_dict()
        assert any(v.is_floating_point() and not torch.equal(v, sb[k]) for k, v in sa.items()), \
            "seeds 0 and 1 built identical weights"

    def test_eval_forward_is_deterministic_and_pure(self):
        model = self.make_model().eval()
        inputs = self.make_inputs()
        before = {k: v.clone() for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        o1, o2 = self.run(model, inputs), self.run(model, inputs)
        assert_outputs_close(o1, o2, what="two eval forwards")
        for k, v in before.items(): assert torch.equal(v, inputs[k]), f"forward modified its input {k!r}"

    def test_batch_equals_single_examples(self):
        model = self.make_model().eval()
        inputs = self.make_inputs()
        batched = self.run(model, inputs)
        singles = [self.run(model, self.split_example(inputs, i)) for i in range(self.batch_size)]
        stacked = {k: torch.cat([s[k] for s in singles]) for k in batched}
        assert_outputs_close(batched, stacked, atol=self.batch_atol, rtol=self.batch_rtol, what="batch vs one-by-one")

    def test_every_parameter_gets_a_finite_gradient(self):
        model = self.make_model().train()
        out = self.run(model, self.make_inputs(max(2, self.batch_size)), grad=True)
        gen = torch.Generator().manual_seed(0)
        # random weights so no output direction is invisible to the loss (e.g. softmax-invariant sums)
        loss = sum((v.float() * torch.randn(v.shape, generator=gen)).sum() for v in out.values() if v.is_floating_point())
        loss.backward()
        missing = [n for n, p in model.named_parameters()
                   if p.requires_grad and p.grad is None and n not in self.params_without_grad]
        assert not missing, f"parameters without gradient: {missing}"
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        assert not bad, f"parameters with non-finite gradient: {bad}"
        total = sum(p.grad.abs().sum().item() for p in model.parameters() if p.grad is not None)
        assert total > 0, "all gradients are zero"

    def test_bf16_autocast_forward(self):
        model = self.make_model().eval()
        inputs = self.make_inputs()
        ref = self.run(model, inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = self.run(model, inputs)
        assert ref.keys() == low.keys()
        for k in ref:
            x, y = ref[k].float(), low[k].float()
            assert torch.isfinite(y).all(), f"{k}: bf16 output is not finite"
            rel = ((x - y).norm() / x.norm().clamp_min(1e-6)).item()
            assert rel <= self.bf16_rel_tol, f"{k}: bf16 relative error {rel:.3g} > {self.bf16_rel_tol}"

    def test_save_load_roundtrip(self, tmp_path: Path):
        from vlnotes.train import save_model, load_model
        model = self.make_model(seed=0).eval()
        path = tmp_path / "model.safetensors"
        save_model(model, path, config=self.model_config(model))
        assert path.exists() and path.stat().st_size > 0
        other = self.make_model(seed=1).eval()
        inputs = self.make_inputs()
        ref = self.run(model, inputs)
        with pytest.raises(AssertionError):  # sanity: before loading, the outputs differ
            assert_outputs_close(ref, self.run(other, inputs))
        load_model(other, path)
        assert_outputs_close(ref, self.run(other.eval(), inputs), what="after save/load")
        for k, v in model.state_dict().items():  # buffers too (BatchNorm running stats)
            assert torch.equal(v, other.state_dict()[k]), f"{k} differs after save/load"

    def test_checkpoint_is_safetensors(self, tmp_path: Path):
        "The file opens with `safetensors` alone (no pickle) and records the architecture in its metadata."
        from safetensors import safe_open
        from vlnotes.train import save_model
        model = self.make_model()
        path = tmp_path / "model.safetensors"
        save_model(model, path, config=self.model_config(model))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            assert set(f.keys()) >= {k for k, _ in model.named_parameters()}
        assert any(type(model).__name__ in str(v) for v in meta.values()), \
            f"metadata does not name the architecture {type(model).__name__}: {meta}"

    def test_load_other_architecture_raises(self, tmp_path: Path):
        from vlnotes.train import save_model, load_model
        other = self.make_other_architecture()
        path = tmp_path / "other.safetensors"
        save_model(other, path)
        model = self.make_model()
        with pytest.raises(ValueError) as e:
            load_model(model, path)
        msg = str(e.value)
        assert type(model).__name__ in msg and type(other).__name__ in msg, \
            f"message should name expected ({type(model).__name__}) and found ({type(other).__name__}): {msg}"

    def test_load_variant_config_raises(self, tmp_path: Path):
        "Same class, different config (e.g. depth or width): mismatched keys/shapes -> ValueError."
        variant = self.make_variant_model()
        if variant is None: pytest.skip("no variant model declared")
        from vlnotes.train import save_model, load_model
        path = tmp_path / "variant.safetensors"
        save_model(variant, path)
        with pytest.raises(ValueError, match="(?i)expected"):
            load_model(self.make_model(), path)

    @pytest.mark.parametrize("corruption", ["truncated", "garbage", "empty"])
    def test_load_corrupted_checkpoint_raises(self, tmp_path: Path, corruption: str):
        from vlnotes.train import save_model, load_model
        model = self.make_model()
        path = tmp_path / "model.safetensors"
        save_model(model, path, config=self.model_config(model))
        data = path.read_bytes()
        path.write_bytes({"truncated": data[: len(data) // 2],
                          "garbage": b"\x13\x37not a safetensors file" * 10, "empty": b""}[corruption])
        with pytest.raises(ValueError) as e:
            load_model(self.make_model(seed=1), path)
        assert path.name in str(e.value), f"the message should name the file: {e.value}"

    def test_bad_input(self, bad_input: BadInput | None):
        if bad_input is None: pytest.skip("no bad inputs declared")
        model = self.make_model().eval()
        with pytest.raises(Exception) as e:
            self.outputs(model, **bad_input.inputs)
        assert isinstance(e.value, bad_input.error), \
            f"{bad_input.description}: expected {bad_input.error.__name__}, got {type(e.value).__name__}: {e.value}"
        msg = str(e.value).lower()
        missing = [m for m in bad_input.match if m.lower() not in msg]
        assert not missing, f"{bad_input.description}: message lacks {missing}: {e.value}"
