//! The shop service: `cargo run -p shop` serves it on 127.0.0.1:8000.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    shop::load::mixes()
        .into_iter()
        .fold(
            stateful_runtime::Service::new(shop::shop::app()).routes(shop::routes::batch_routes),
            stateful_runtime::Service::load_mix,
        )
        .main()
}
