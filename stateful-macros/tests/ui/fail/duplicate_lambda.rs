use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            Ok(*ctx.state())
        }
    }

    #[lambda(key = String, state = i64)]
    impl Stock {
        async fn put(ctx: &mut Ctx<Self>, v: i64) -> Result<(), Rejection> {
            ctx.set_state(v);
            Ok(())
        }
    }
}

fn main() {}
