//! A new app: copy this crate, rename the module, and grow it. `cargo run -p template` serves
//! it on http://127.0.0.1:8000, `cargo test -p template` runs its tests.

/// The app: every `#[lambda]` in this module is a stateful function.
#[stateful_runtime::app]
pub mod greeter {
    /// How often each name was greeted.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Greetings {
        /// Greetings so far.
        pub count: u64,
    }

    #[lambda(key = String, state = Greetings)]
    impl Greeter {
        /// `curl -X POST http://127.0.0.1:8000/greet/ann`
        #[route(post, "/greet/{key}")]
        async fn greet(ctx: &mut Ctx<Self>) -> Result<String, Rejection> {
            ctx.state_mut().count += 1;
            Ok(format!("hello {}, #{}", ctx.key(), ctx.state().count))
        }

        /// `curl http://127.0.0.1:8000/greetings/ann`
        #[route(get, "/greetings/{key}")]
        async fn count(ctx: &Ctx<Self>) -> Result<u64, Rejection> {
            Ok(ctx.state().count)
        }
    }
}
