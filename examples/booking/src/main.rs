//! Serves the booking app (`--help` lists the options; `graph` prints its dataflow graph).

fn main() -> std::process::ExitCode {
    booking::booking::main()
}
