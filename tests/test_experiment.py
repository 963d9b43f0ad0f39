"""Cross-cutting tests of `vlnotes.experiment`: `run` is deterministic, `multi_seed` gives the right statistics,
and `launch` reports a failing rank (its traceback, its exit code) instead of hanging, and kills what is left.

The launch targets are functions of this module: a launched process imports it (the parent's `sys.path` is
passed on), so they must stay at module level.
"""
import math, os, statistics, subprocess, sys, time

import pytest
import torch
import torch.distributed as dist
from torch import nn

from vlnotes.core import SeedStats, seed_everything
from vlnotes.experiment import LaunchError, launch, multi_seed, render_split, run


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(4, 8))


def test_run_is_deterministic_given_the_seed():
    data = render_split("train", 64, image_size=16)
    def once(seed: int):
        seed_everything(seed)
        return run(tiny_net(), data, max_steps=6, batch_size=16, log_every=1, lr=1e-2, seed=seed, progress=False)
    a, b, other = once(0), once(0), once(1)
    assert a.history.rows == b.history.rows and len(a.history.rows) == 6
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    assert other.history.series("loss")[1] != a.history.series("loss")[1]          # the seed matters
    assert not a.model.training


def test_multi_seed_statistics():
    values = {0: 1.0, 1: 2.0, 2: 4.0}
    st = multi_seed(lambda s: values[s])
    assert isinstance(st, SeedStats) and st.n == 3 and st.values == (1.0, 2.0, 4.0)
    assert math.isclose(st.mean, statistics.mean(values.values()))
    assert math.isclose(st.std, statistics.stdev(values.values()))                 # ddof = 1
    both = multi_seed(lambda s: {"acc": values[s], "loss": torch.tensor(-values[s])}, seeds=(2, 0))
    assert set(both) == {"acc", "loss"} and both["acc"].values == (4.0, 1.0) and both["loss"].mean == -2.5
    one = multi_seed(lambda s: 0.5, seeds=(7,))
    assert (one.mean, one.std, one.n) == (0.5, 0.0, 1)
    # every call starts from its seed, whatever ran before
    draws = multi_seed(lambda s: torch.rand(()).item(), seeds=(3, 4))
    torch.manual_seed(4)
    assert draws.values[1] == torch.rand(()).item()


# -- launch targets (module level: the launched processes import them) -----------------------------------------

def rank_sum(x: float) -> dict:
    t = torch.tensor([x + dist.get_rank()])
    dist.all_reduce(t)
    return {"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": t.item(),
            "env": (os.environ["RANK"], os.environ["WORLD_SIZE"]), "threads": torch.get_num_threads()}


def fail_on_rank_one():
    if dist.get_rank() == 1:
        raise RuntimeError("rank one broke on purpose")
    return "rank 0 done"       # then waits for rank 1 in the launcher's barrier, until it is killed


def exit_on_rank_one(code: int):
    if dist.get_rank() == 1:
        print("rank 1 leaving without a word", flush=True)
        os._exit(code)
    dist.barrier()             # waits for rank 1, which never comes


def system_exit(code: int):
    sys.exit(code)


def sleep_with_a_child(pid_file: str):
    "Start a grandchild process, note its pid, then hang."
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(f"{pid_file}.{dist.get_rank()}", "w") as f: f.write(str(child.pid))
    time.sleep(600)


def _alive(pid: int) -> bool:
    "Running (a killed process waiting for init to reap it, a zombie, is not)."
    try: state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError: return False
    return state not in ("Z", "X")


@pytest.mark.distributed
def test_launch_returns_every_rank_result():
    got = launch(rank_sum, nprocs=2, args=(10.0,))
    assert got == [{"rank": r, "world": 2, "sum": 21.0, "env": (str(r), "2"), "threads": 1} for r in (0, 1)]


@pytest.mark.distributed
def test_launch_surfaces_the_failing_rank_and_kills_the_rest():
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as info:
        launch(fail_on_rank_one, nprocs=2, timeout=240)
    err = info.value
    assert err.rank == 1 and err.returncode == 1
    assert "rank 1 of 2 exited with code 1" in str(err)
    assert "RuntimeError: rank one broke on purpose" in str(err) and "in fail_on_rank_one" in str(err)
    assert time.monotonic() - t0 < 120          # rank 0, stuck in the barrier, was killed; no wait for the timeout


@pytest.mark.distributed
def test_launch_reports_a_worker_that_exits_nonzero():
    with pytest.raises(LaunchError) as info:
        launch(exit_on_rank_one, nprocs=2, args=(3,), timeout=240)
    err = info.value
    assert (err.rank, err.returncode) == (1, 3) and "rank 1 of 2 exited with code 3" in str(err)
    assert "rank 1 leaving without a word" in str(err) and "leaving without a word" in err.output
    with pytest.raises(LaunchError, match="exited with code 4") as info:
        launch(system_exit, nprocs=1, args=(4,))
    assert "SystemExit: 4" in str(info.value)


@pytest.mark.distributed
def test_launch_timeout_kills_the_whole_session(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="not finished after 40s"):
        launch(sleep_with_a_child, nprocs=2, args=(str(tmp_path / "pid"),), timeout=40)
    assert time.monotonic() - t0 < 80
    pids = [int((tmp_path / f"pid.{r}").read_text()) for r in (0, 1) if (tmp_path / f"pid.{r}").exists()]
    assert pids, "the workers did not start within the timeout"
    time.sleep(0.5)
    assert not any(_alive(p) for p in pids), "a grandchild outlived the launch"


def test_launch_rejects_bad_targets():
    with pytest.raises(TypeError, match="cannot be imported by a new process"):
        launch(lambda: 0)
    with pytest.raises(ValueError, match="expected 'module:function'"):
        launch("vlnotes.experiment")
    with pytest.raises(TypeError, match="args: expected a tuple"):
        launch(rank_sum, args=1.0)


# --- parallel_map: forked workers, one torch thread each --------------------------------------------------------

def _short_run(seed: int) -> dict:
    "A 6-step run from `seed`: its history rows and a weight checksum (what a claim run returns, in small)."
    data = render_split("train", 48, image_size=16)
    seed_everything(seed)
    r = run(tiny_net(), data, max_steps=6, batch_size=16, log_every=1, lr=1e-2, seed=seed, progress=False)
    return {"rows": r.history.rows, "checksum": float(sum(p.detach().double().sum() for p in r.model.parameters()))}


def test_parallel_map_equals_the_one_thread_loop_every_time_under_load():
    """Forked workers (one thread each) give exactly the numbers of the same runs one after the other on one thread,
    twenty times over while another process keeps both cores busy: no hang, no reordering, no drift."""
    from vlnotes.experiment import parallel_map
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: expected = [_short_run(s) for s in (0, 1, 2)]
    finally: torch.set_num_threads(threads)
    load = subprocess.Popen([sys.executable, "-c", "import torch\nx = torch.randn(400, 400)\nwhile True: x @ x"])
    try:
        for _ in range(20):
            assert parallel_map(_short_run, [0, 1, 2], workers=2) == expected
    finally:
        load.kill(); load.wait()


def test_parallel_map_reports_a_dead_worker_instead_of_hanging():
    from concurrent.futures.process import BrokenProcessPool
    from vlnotes.experiment import parallel_map
    start = time.monotonic()
    with pytest.raises(BrokenProcessPool):
        parallel_map(lambda x: os._exit(3) if x == 1 else x, [0, 1, 2], workers=2)
    assert time.monotonic() - start < 60


def test_multi_seed_with_workers_equals_one_thread_multi_seed():
    from vlnotes.experiment import multi_seed as ms
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: one = ms(lambda s: _short_run(s)["checksum"], seeds=(3, 4, 5))
    finally: torch.set_num_threads(threads)
    assert ms(lambda s: _short_run(s)["checksum"], seeds=(3, 4, 5), workers=2).values == one.values


def test_multi_seed_arms_equals_one_thread_multi_seed_per_arm():
    "All arm x seed runs sharing two workers give each arm's one-thread multi_seed, arm by arm, in order."
    from vlnotes.experiment import multi_seed as ms, multi_seed_arms
    offset = {"first": 0, "second": 10}                  # arms that differ: another data/initialisation stream
    checksum = lambda arm, seed: _short_run(seed + offset[arm])["checksum"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: one = {arm: ms(lambda s, arm=arm: checksum(arm, s), seeds=(3, 4, 5)).values for arm in offset}
    finally: torch.set_num_threads(threads)
    both = multi_seed_arms(checksum, list(offset), seeds=(3, 4, 5), workers=2)
    assert list(both) == list(offset) and {arm: st.values for arm, st in both.items()} == one
    assert one["first"] != one["second"]
