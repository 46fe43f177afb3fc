//! Serves the app (`--help` lists the options; `graph` prints its dataflow graph).

fn main() -> std::process::ExitCode {
    template::greeter::main()
}
