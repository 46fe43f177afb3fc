use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            Ok(*ctx.state())
        }

        async fn get(ctx: &mut Ctx<Self>, twice: bool) -> Result<i64, Rejection> {
            Ok(*ctx.state())
        }
    }
}

fn main() {}
