//! The `updlock` command. See `updlock --help`.

mod app;
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(app::main())
}
