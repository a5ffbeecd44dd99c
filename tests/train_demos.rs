//! The training demos of issue 5, run exactly as the examples run them (the example files
//! are compiled in here as modules): the torchdiffeq spiral fitted by a neural ODE, and a
//! universal Lotka–Volterra whose learned interaction terms extrapolate beyond the data.
//! Fixed seeds; the thresholds are the ones docs/training.md states.

#[path = "../examples/train_spiral.rs"]
#[allow(dead_code)]
mod spiral;

#[path = "../examples/train_ude.rs"]
#[allow(dead_code)]
mod ude;

#[test]
fn the_spiral_demo_trains_below_its_stated_loss() {
    let (start, end, iters) = spiral::fit_spiral(false).unwrap();
    assert_eq!(iters, 3000);
    assert!(start > 50.0, "the starting weights are far off: {start}");
    assert!(end < 0.1, "full-trajectory MSE after training: {end}");
}

#[test]
fn the_universal_lotka_volterra_extrapolates_beyond_its_data() {
    let r = ude::fit_ude().unwrap();
    assert!(r.fit_loss < 1e-3, "fit MSE {}", r.fit_loss);
    assert!(
        r.extrapolation_rms < 0.05 && r.untrained_rms > 1.0,
        "RMS beyond the data: trained {}, untrained {}",
        r.extrapolation_rms,
        r.untrained_rms
    );
}
