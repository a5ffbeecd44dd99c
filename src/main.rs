//! The `ndec` binary: a thin shell over the library's command line.
//!
//! The compiler recurses over expression trees, so it runs on a thread with a large stack:
//! a model with a 100,000-term sum must get a result, not a stack overflow.

const STACK_BYTES: usize = 1 << 30;

fn main() {
    let worker = std::thread::Builder::new()
        .name("ndec".into())
        .stack_size(STACK_BYTES)
        .spawn(|| ndec::cli::main_with_args(std::env::args_os()));
    let code = match worker.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => {
            ndec::cli::note(
                "error: internal compiler error (a bug in ndec); please report it with the model",
            );
            101
        }
        Err(e) => {
            ndec::cli::note(format_args!("error: cannot start the compiler thread: {e}"));
            101
        }
    };
    std::process::exit(code);
}
