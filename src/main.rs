//! The `ndec` binary: a thin shell over the library's command line.

fn main() {
    let code = ndec::cli::main_with_args(std::env::args_os());
    std::process::exit(code);
}
