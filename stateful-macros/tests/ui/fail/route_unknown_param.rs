use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        #[route(post, "/stock/add/{key}/{amout}")]
        async fn add(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), Rejection> {
            *ctx.state_mut() += amount;
            Ok(())
        }
    }
}

fn main() {}
