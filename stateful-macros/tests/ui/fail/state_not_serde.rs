use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[derive(Default, Clone)]
    pub struct StockState {
        count: i64,
    }

    #[lambda(key = String, state = StockState)]
    impl Stock {
        async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            Ok(ctx.state().count)
        }
    }
}

fn main() {}
