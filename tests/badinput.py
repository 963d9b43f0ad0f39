"""The bad-input matrix kit: one `Case` per (public entry point, kind of bad input).

Each `tests/test_bad_inputs_<area>.py` builds a list of cases and parametrises one test over it:

```python
from badinput import Case, check_case, case_ids

CASES = [
    Case("ResNet", "float", lambda: ResNetConfig(layers=[2.7, 1]), TypeError,
         arg="layers", expected="int", got="2.7"),
    ...
]

@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, tmp_path): check_case(case, tmp_path)
```

A case passes when the call raises one of `error` and the message names the argument (`arg`), says what was
expected (`expected`: a fragment of that part) and what came (`got`: a fragment of the received value, type or
shape). Every one of `arg`, `expected`, `got` is required, so a case cannot pass on a bare "invalid input".
`kind` is one of `KINDS`, so the matrix can be counted per module and per kind (`summarise`).
"""
from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

KINDS = ("type", "nan", "inf", "negative", "zero", "huge", "empty", "shape", "dtype", "truncated", "corrupt",
         "missing-key", "schema", "path", "unwritable", "value", "security")


@dataclass
class Case:
    module: str                               # the public entry point, e.g. "formats.CocoCaptions"
    kind: str                                 # one of KINDS
    call: Callable[..., Any]                  # zero-arg, or takes `tmp_path`
    error: type[BaseException] | tuple[type[BaseException], ...]
    arg: str                                  # the argument (or file/key) the message must name
    expected: str                             # a fragment saying what was expected
    got: str                                  # a fragment showing what came
    note: str = ""                            # a word on why the case exists (e.g. "was silent before")
    extra: tuple[str, ...] = field(default_factory=tuple)   # more fragments the message must contain

    def __post_init__(self):
        if self.kind not in KINDS: raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        for name in ("arg", "expected", "got"):
            if not getattr(self, name): raise ValueError(f"Case.{name}: expected a non-empty fragment")


def case_ids(cases: list[Case]) -> list[str]:
    "Readable, unique test ids: `module-kind-arg[-n]`."
    seen: Counter = Counter()
    ids = []
    for c in cases:
        base = f"{c.module}-{c.kind}-{c.arg}".replace(" ", "_")
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


@contextlib.contextmanager
def raises(error, *words):
    "Like `pytest.raises(error)`, and the message must contain every one of `words` (case-insensitive)."
    with pytest.raises(error) as e:
        yield e
    msg = str(e.value).lower()
    missing = [w for w in words if str(w).lower() not in msg]
    assert not missing, f"message lacks {missing}: {type(e.value).__name__}: {e.value}"


def check_case(case: Case, tmp_path=None) -> None:
    "Run `case.call` and assert the clear error it must raise."
    takes_path = len(inspect.signature(case.call).parameters) > 0
    with raises(case.error, case.arg, case.expected, case.got, *case.extra):
        case.call(tmp_path) if takes_path else case.call()


def summarise(cases: list[Case]) -> dict[str, int]:
    "Cases per module prefix (`formats`, `train`, ...), for the notes."
    return dict(Counter(c.module.split(".")[0] for c in cases))
