//! Compile a model from a string with the library API, solve it, and read the solution.
//! Run with `cargo run --release --example solve`.

use ndec::program::Program;
use ndec::runtime::{Method, SaveAt, SolveOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prog = Program::from_source(
        "lotka_volterra.nde",
        "param a = 1.5, b = 1.0, c = 3.0, d = 1.0
         state x = 1.0
         state y = 1.0
         x' = a*x - b*x*y
         y' = c*x*y - d*y",
    )?;
    // Parameters in layout order; change one by name.
    let mut p = prog.default_params();
    ndec::params::set_scalar(&prog.layout, &mut p, "a", 1.6)?;
    let u0 = prog.initial_state(&p);

    let mut opts = SolveOptions::new(Method::Tsit5, 0.0, 10.0);
    opts.rtol = 1e-8;
    opts.atol = vec![1e-10];
    opts.saveat = SaveAt::Every(2.0);
    let sol = prog.solve(&p, &u0, &opts)?;

    let names = prog.model.state_names();
    println!("t, {}", names.join(", "));
    for i in 0..sol.len() {
        println!("{:5.2}, {:?}", sol.t[i], sol.row(i));
    }
    println!(
        "{} steps ({} rejected), {} vector-field calls",
        sol.stats.steps, sol.stats.rejected, sol.stats.rhs_evals
    );
    Ok(())
}
