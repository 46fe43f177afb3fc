use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[derive(Serialize, Deserialize)]
    pub struct Sku(f64);

    #[lambda(key = Sku, state = i64)]
    impl Stock {
        async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            Ok(*ctx.state())
        }
    }
}

fn main() {}
