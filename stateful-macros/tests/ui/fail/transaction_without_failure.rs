use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        async fn add(ctx: &mut Ctx<Self>, n: i64) -> Result<(), Rejection> {
            transaction! {
                *ctx.state_mut() += n;
                Ok(())
            }
        }
    }
}

fn main() {}
