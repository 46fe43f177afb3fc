//! The fixture app as a service: what the system tests spawn (`CARGO_BIN_EXE_fixture`).

fn main() -> std::process::ExitCode {
    stateful_runtime::Service::new(stateful_tests::fixture::app())
        .routes(stateful_tests::batch_routes)
        .main()
}
