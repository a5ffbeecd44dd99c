"""The demos of python/examples (docs/python.md, "Demos"), each run in a quick configuration
with assertions on what it measures. The full configurations are the scripts' defaults; the
numbers in the comments are this configuration's, measured on the 2-core CI machine."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import ROOT

import torch  # noqa: E402

EXAMPLES = ROOT / "python" / "examples"
if str(EXAMPLES) not in sys.path:
    # On sys.path (not loaded from a file path) so that DDP's spawned workers, which inherit
    # sys.path, import the demo module by name.
    sys.path.insert(0, str(EXAMPLES))


@pytest.fixture(autouse=True)
def _restore_threads():
    """The demos set torch to one thread; give the other tests their setting back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_odenet_digits_classifies_held_out_digits():
    import odenet_digits

    r = odenet_digits.main(epochs=8)
    # Measured: test accuracy 0.111 untrained → 0.940; train loss 1.48 → 0.147.
    assert r["initial_test_accuracy"] < 0.3, r
    assert r["test_accuracy"] > 0.92, r
    assert r["train_loss"][-1] < r["train_loss"][0] / 5, r["train_loss"]


def test_latent_ode_learns_to_reconstruct_and_forecast():
    import latent_ode

    r = latent_ode.main(iters=150, n_train=256, n_test=64)
    before, after = r["before"]["test"], r["after"]["test"]
    # Measured on the held-out series: -ELBO 397 → 84; MSE reconstruction 0.095 (predicting
    # 0: 0.553), forecast 0.170 (0: 0.579).
    assert after["neg_elbo"] < before["neg_elbo"] / 3, (before, after)
    assert after["recon_mse"] < 0.3 * after["zero_recon_mse"], after
    assert after["forecast_mse"] < 0.5 * after["zero_forecast_mse"], after
    # The training curve (single-sample -ELBO per minibatch) falls too.
    assert np.mean(r["curve"][-20:]) < np.mean(r["curve"][:20]) / 3


def test_ude_trained_from_torch_fits_and_extrapolates():
    import ude_lv

    r = ude_lv.main(adam_iters=500, lbfgs_iters=300)
    # Measured: fit MSE 8.4e4 untrained → 0.36 (Adam) → 2.8e-4 (L-BFGS); RMS error on
    # (6, 15], never seen in training, 0.018 (untrained: 2.9e7).
    assert r["untrained_fit_mse"] > 1e3, r
    assert r["fit_mse"] < 1e-3, r
    assert r["extrapolation_rms"] < 0.05, r
    assert r["lbfgs_iters"] > 100, r          # L-BFGS ran, not stopped at once


def test_ddp_on_two_processes_equals_single_process_training():
    import torch.distributed as dist

    assert dist.is_available() and dist.is_gloo_available(), "torch.distributed with gloo"
    import ddp_odenet

    r = ddp_odenet.main(iters=3, batch=32)
    # Measured: SGD moves the parameters by up to 0.16 (θ of the ndec block: 0.048); DDP and
    # single-process training differ by 1.1e-16 (the order in which the gradient is summed
    # over the batch, see the demo's docstring). A DDP that summed instead of averaging, or
    # ranks that saw the wrong rows, would differ by ~1e-2.
    assert r["max_abs_change"] > 1e-3, r
    assert r["theta_max_abs_change"] > 1e-3, r
    assert r["max_abs_diff"] < 1e-12, r
    assert r["theta_max_abs_diff"] < 1e-12, r
    # The all-reduce gives both ranks the same bits, and they take the same Adam step.
    assert r["ranks_max_abs_diff"] == 0.0, r
    np.testing.assert_allclose(r["losses_ddp"], r["losses_single"], rtol=1e-12)
