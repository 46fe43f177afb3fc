use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String)]
    impl Stock {
        async fn subtract(ctx: &mut Ctx<Self>, amount: i64) -> Result<i64, Rejection> {
            Ok(amount)
        }
    }

    #[lambda(key = String)]
    impl Order {
        async fn checkout(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            ctx.call::<Stock>(&"apple".to_string()).subtract(1, 2).await
        }
    }
}

fn main() {}
