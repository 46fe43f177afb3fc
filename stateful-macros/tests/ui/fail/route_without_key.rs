use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        /// No `{key}` and no `key = new`: which instance is it?
        #[route(post, "/stock/create/{amount}")]
        async fn create(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), Rejection> {
            ctx.set_state(amount);
            Ok(())
        }
    }
}

fn main() {}
