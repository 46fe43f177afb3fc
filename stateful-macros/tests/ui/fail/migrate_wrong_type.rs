use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct Stock {
        pub count: u32,
    }

    /// Returns the wrong type: it must return the lambda's state, `Stock`.
    fn from_v1(old: u32) -> u64 {
        u64::from(old)
    }

    #[lambda(key = String, state = Stock, migrate = from_v1)]
    impl Item {
        async fn count(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
            Ok(ctx.state().count)
        }
    }
}

fn main() {}
